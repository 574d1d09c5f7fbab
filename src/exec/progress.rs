//! Progress reporting for long commands: bars and spinners on a terminal
//! (indicatif), plain periodic lines otherwise (logs, CI), nothing when quiet.
//!
//! - [`Progress`]: rows done of an optional total, for one long loop
//!   (`fuseflow score`).
//! - [`RunObserver`]: what a run tells of its steps as they start and
//!   finish; [`StepProgress`] shows it, one spinner per running step under
//!   a bar of steps done.

use std::collections::HashMap;
use std::fmt;
use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::StepReport;

/// How often plain lines are printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars and spinners redrawn in place on stderr.
    Bar,
    /// One line on stderr every few seconds.
    Lines,
    /// Nothing.
    Quiet,
}

impl ProgressMode {
    /// Bars when stderr is a terminal, lines otherwise; quiet when asked.
    pub fn detect(quiet: bool) -> Self {
        match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => ProgressMode::Quiet,
            (false, true) => ProgressMode::Bar,
            (false, false) => ProgressMode::Lines,
        }
    }
}

/// A style from a template written in this file (so it cannot fail to parse).
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Counts rows done out of an optional total and reports them: a bar with
/// throughput and ETA (a spinner while the total is unknown), or a line
/// every few seconds.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    label: String,
    bar: ProgressBar,
    last_line: Instant,
}

impl Progress {
    /// Start reporting `label`.
    pub fn new(mode: ProgressMode, label: impl Into<String>, total: Option<usize>) -> Self {
        let label = label.into();
        let bar = match mode {
            ProgressMode::Bar => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            _ => ProgressBar::hidden(),
        };
        bar.set_message(label.clone());
        let mut progress = Progress {
            mode,
            label,
            bar,
            last_line: Instant::now(),
        };
        progress.set_total(total);
        progress
    }

    /// Set the number of rows expected, once known.
    pub fn set_total(&mut self, total: Option<usize>) {
        match total {
            Some(t) => {
                self.bar.set_length(t as u64);
                self.bar.set_style(style(
                    "{msg} [{bar:30}] {human_pos}/{human_len} rows ({percent}%) {per_sec} eta {eta}",
                ));
            }
            None => {
                self.bar.unset_length();
                self.bar.set_style(style(
                    "{spinner} {msg} {human_pos} rows {per_sec} {elapsed}",
                ));
            }
        }
        self.bar.enable_steady_tick(Duration::from_millis(100));
    }

    /// Record `rows` more rows done.
    pub fn advance(&mut self, rows: usize) {
        self.bar.inc(rows as u64);
        if self.mode == ProgressMode::Lines && self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            self.line();
        }
    }

    /// Print the final state.
    pub fn finish(&mut self) {
        match self.mode {
            ProgressMode::Bar => self.bar.finish(),
            ProgressMode::Lines => self.line(),
            ProgressMode::Quiet => {}
        }
    }

    fn line(&self) {
        let secs = self.bar.elapsed().as_secs_f64().max(1e-9);
        let done = self.bar.position();
        let status = match self.bar.length() {
            Some(t) if t > 0 => format!("{done}/{t} rows ({:.0}%)", 100.0 * done as f64 / t as f64),
            _ => format!("{done} rows"),
        };
        eprintln!(
            "{}: {status}, {:.1}M rows/s, {secs:.1} s",
            self.label,
            done as f64 / secs / 1e6
        );
    }
}

/// What a run tells of its steps, from its coordinating thread, as they
/// start and finish (set one in [`RunOptions::observer`](crate::RunOptions::observer)).
pub trait RunObserver: Send + Sync + fmt::Debug {
    /// The run has `steps` steps and starts now.
    fn run_started(&self, steps: usize);
    /// `step` (of `kind`) started running (or looking for a cached result).
    fn step_started(&self, step: &str, kind: &str);
    /// A step finished (ran, was reused, or completed inside a fused group).
    fn step_finished(&self, report: &StepReport);
    /// The run is over, whether it succeeded or not.
    fn run_finished(&self);
}

/// Shows a run's steps: on a terminal a bar of steps done and a spinner per
/// running step with its elapsed time; otherwise a line every few seconds
/// naming the running steps (none for runs shorter than that); nothing when
/// quiet.
#[derive(Debug)]
pub struct StepProgress {
    mode: ProgressMode,
    multi: MultiProgress,
    overall: ProgressBar,
    /// A spinner per running step (its elapsed time is the step's).
    running: Arc<Mutex<HashMap<String, ProgressBar>>>,
    lines: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
}

impl StepProgress {
    /// A display of a run's steps in `mode`.
    pub fn new(mode: ProgressMode) -> Self {
        let multi = match mode {
            ProgressMode::Bar => MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            _ => MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        };
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(style("steps [{bar:30}] {pos}/{len} {elapsed}"));
        StepProgress {
            mode,
            multi,
            overall,
            running: Arc::new(Mutex::new(HashMap::new())),
            lines: Mutex::new(None),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProgressBar>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RunObserver for StepProgress {
    fn run_started(&self, steps: usize) {
        self.overall.set_length(steps as u64);
        if self.mode != ProgressMode::Lines {
            return;
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let (running, overall) = (Arc::clone(&self.running), self.overall.clone());
        let heartbeat = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(LINE_EVERY) {
                let running = running.lock().unwrap_or_else(PoisonError::into_inner);
                let mut steps: Vec<String> = running
                    .iter()
                    .map(|(name, spinner)| {
                        format!("{name} ({:.0} s)", spinner.elapsed().as_secs_f64())
                    })
                    .collect();
                steps.sort();
                eprintln!(
                    "[{:.0} s] {}/{} steps done; running: {}",
                    overall.elapsed().as_secs_f64(),
                    overall.position(),
                    overall.length().unwrap_or(0),
                    steps.join(", ")
                );
            }
        });
        *self.lines.lock().unwrap_or_else(PoisonError::into_inner) = Some((stop, heartbeat));
    }

    fn step_started(&self, step: &str, kind: &str) {
        let spinner = self.multi.add(ProgressBar::new_spinner());
        spinner.set_style(style("  {spinner} {msg} {elapsed}"));
        spinner.set_message(format!("{step} [{kind}]"));
        if self.mode == ProgressMode::Bar {
            spinner.enable_steady_tick(Duration::from_millis(100));
        }
        self.running().insert(step.to_string(), spinner);
    }

    fn step_finished(&self, report: &StepReport) {
        if let Some(spinner) = self.running().remove(&report.name) {
            spinner.finish_and_clear();
            self.multi.remove(&spinner);
        }
        self.overall.inc(1);
    }

    fn run_finished(&self) {
        if let Some((stop, heartbeat)) = self
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            drop(stop);
            let _ = heartbeat.join();
        }
        for (_, spinner) in self.running().drain() {
            spinner.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}
