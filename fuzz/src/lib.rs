//! fuseflow's fuzz targets, run by honggfuzz on the stable toolchain.
//!
//! Each binary in `src/bin/` but one feeds one target of [`targets`] with
//! the fuzzer's inputs; `minimize` shrinks a crashing input ([`shrink`]).
//! `tests/hostile_input.rs` in fuseflow replays the seed corpus and every
//! minimized crash through the same functions in `cargo test`.
//! `scripts/fuzz.sh` builds and runs them.

pub mod shrink;
pub mod targets;

/// Feed `target` with honggfuzz's inputs, for ever.
///
/// A panic that fuseflow contains (a third-party decoder's, which a reader
/// turns into an error naming the file) is expected and not a finding, so
/// the panic hook aborts, which is how honggfuzz records a crash, only for
/// the others: the bugs.
pub fn run(target: fn(&[u8])) -> ! {
    static HOOK: std::sync::Once = std::sync::Once::new();
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            // After honggfuzz installed its own hook on the first input.
            HOOK.call_once(abort_on_uncontained_panics);
            target(data);
        });
    }
}

/// Make a panic that fuseflow does not contain abort the process, which is
/// how the fuzzer (and the minimizer's child runs) record a crash.
pub fn abort_on_uncontained_panics() {
    std::panic::set_hook(Box::new(|info| {
        if !fuseflow::error::panic_is_contained() {
            eprintln!("{info}");
            std::process::abort();
        }
    }))
}
