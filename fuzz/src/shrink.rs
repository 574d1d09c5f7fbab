//! Shrinking a failing input by delta debugging: remove chunks of it,
//! halving their size down to one byte, keeping each removal after which it
//! still fails, until no removal does (or time is up).
//!
//! This file is also compiled into fuseflow's test suite
//! (`tests/hostile_input.rs`), which checks it on inputs with a known
//! smallest failing part.

use std::time::Instant;

/// The smallest input found, by removing chunks of `data`, for which
/// `still_fails` holds (it holds for `data`); shrinking stops at `deadline`
/// with what it has.
pub fn shrink(
    mut data: Vec<u8>,
    mut still_fails: impl FnMut(&[u8]) -> bool,
    deadline: Instant,
) -> Vec<u8> {
    let mut chunk = data.len().div_ceil(2).max(1);
    while !data.is_empty() {
        let mut start = 0;
        let mut shrunk = false;
        while start < data.len() {
            if Instant::now() > deadline {
                return data;
            }
            let end = (start + chunk).min(data.len());
            let candidate: Vec<u8> = [&data[..start], &data[end..]].concat();
            if still_fails(&candidate) {
                data = candidate;
                shrunk = true;
            } else {
                start = end;
            }
        }
        match (shrunk, chunk) {
            (false, 1) => break,
            (false, _) => chunk = chunk.div_ceil(2),
            (true, _) => {}
        }
    }
    data
}
