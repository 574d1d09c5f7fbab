//! Progress reporting for long runs: a bar on a terminal, plain periodic lines
//! otherwise (logs, CI), nothing when quiet.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar redrawn in place on stderr.
    Bar,
    /// One line on stderr every few seconds.
    Lines,
    /// Nothing.
    Quiet,
}

impl ProgressMode {
    /// A bar when stderr is a terminal, lines otherwise; quiet when asked.
    pub fn detect(quiet: bool) -> Self {
        match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => ProgressMode::Quiet,
            (false, true) => ProgressMode::Bar,
            (false, false) => ProgressMode::Lines,
        }
    }
}

/// Counts rows done out of an optional total and reports them.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    label: String,
    total: Option<usize>,
    done: usize,
    start: Instant,
    last: Instant,
}

impl Progress {
    /// Start reporting `label`.
    pub fn new(mode: ProgressMode, label: impl Into<String>, total: Option<usize>) -> Self {
        let now = Instant::now();
        Progress {
            mode,
            label: label.into(),
            total,
            done: 0,
            start: now,
            last: now,
        }
    }

    /// Set the number of rows expected, once known.
    pub fn set_total(&mut self, total: Option<usize>) {
        self.total = total;
    }

    /// Record `rows` more rows done.
    pub fn advance(&mut self, rows: usize) {
        self.done += rows;
        let every = match self.mode {
            ProgressMode::Quiet => return,
            ProgressMode::Bar => Duration::from_millis(100),
            ProgressMode::Lines => Duration::from_secs(5),
        };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.print(false);
        }
    }

    /// Print the final state.
    pub fn finish(&mut self) {
        if self.mode != ProgressMode::Quiet {
            self.print(true);
        }
    }

    fn print(&self, last: bool) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = self.done as f64 / secs;
        let status = match self.total {
            Some(t) if t > 0 => format!(
                "{}/{} rows ({:.0}%)",
                self.done,
                t,
                100.0 * self.done as f64 / t as f64
            ),
            _ => format!("{} rows", self.done),
        };
        let mut err = std::io::stderr().lock();
        let _ = match self.mode {
            ProgressMode::Bar => {
                let width = 30;
                let filled = self
                    .total
                    .filter(|&t| t > 0)
                    .map_or(0, |t| (width * self.done.min(t)) / t);
                write!(
                    err,
                    "\r{} [{}{}] {status} {:.1}M rows/s{}",
                    self.label,
                    "#".repeat(filled),
                    "-".repeat(width - filled),
                    rate / 1e6,
                    if last { "\n" } else { "" }
                )
            }
            ProgressMode::Lines => writeln!(
                err,
                "{}: {status}, {:.1}M rows/s, {:.1} s",
                self.label,
                rate / 1e6,
                secs
            ),
            ProgressMode::Quiet => Ok(()),
        };
    }
}
