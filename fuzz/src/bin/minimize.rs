//! Shrink an input that makes a fuzz target fail to a smaller one that fails
//! the same way, for `crashes/` (scripts/fuzz.sh runs it on each crash).
//!
//! ```sh
//! minimize TARGET INPUT OUTPUT [SECONDS]
//! ```
//!
//! Each candidate runs in a child process (this binary with `--once`), as
//! under the fuzzer: a panic fuseflow does not contain aborts it, and it is
//! limited to 2 GiB of memory and 10 s. A candidate fails the same way when
//! it ends the same way as the input: killed by the same signal, or out of
//! time. The input is shrunk by [`shrink`] until no removal keeps the
//! failure or SECONDS (default 120) have passed; the smallest failing input
//! is written to OUTPUT.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use fuseflow_fuzz::shrink::shrink;
use fuseflow_fuzz::targets::TARGETS;

/// Memory each run may use, as the fuzzer allows.
const MEMORY_BYTES: u64 = 2 << 30;
/// Time each run may take, as the fuzzer allows.
const RUN_TIME: Duration = Duration::from_secs(10);

/// How one run of a target on an input ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Passed,
    /// Killed by this signal (an abort is SIGABRT), or exited non-zero.
    Failed(i32),
    OutOfTime,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [once, target, input] if once == "--once" => run_once(target, Path::new(input)),
        [target, input, output, rest @ ..] if rest.len() <= 1 => {
            let budget = rest.first().map_or(Ok(120), |s| s.parse::<u64>());
            let Ok(budget) = budget else {
                eprintln!("minimize: SECONDS must be a whole number");
                return ExitCode::from(2);
            };
            minimize(target, Path::new(input), Path::new(output), budget)
        }
        _ => {
            eprintln!("usage: minimize TARGET INPUT OUTPUT [SECONDS]");
            ExitCode::from(2)
        }
    }
}

/// The child: run `target` once on the file `input`, aborting on a panic
/// fuseflow does not contain.
fn run_once(target: &str, input: &Path) -> ExitCode {
    let Some(target) = TARGETS.iter().find(|t| t.name == target) else {
        eprintln!("minimize: no target '{target}'");
        return ExitCode::from(2);
    };
    let limit = libc::rlimit {
        rlim_cur: MEMORY_BYTES,
        rlim_max: MEMORY_BYTES,
    };
    // SAFETY: setrlimit reads the struct it is given and changes only this
    // process's limit.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    fuseflow_fuzz::abort_on_uncontained_panics();
    match std::fs::read(input) {
        Ok(data) => {
            (target.run)(&data);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("minimize: cannot read {}: {e}", input.display());
            ExitCode::from(2)
        }
    }
}

fn minimize(target: &str, input: &Path, output: &Path, budget: u64) -> ExitCode {
    let (data, scratch) = match (std::fs::read(input), tempfile()) {
        (Ok(data), Ok(scratch)) => (data, scratch),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("minimize: {}: {e}", input.display());
            return ExitCode::from(2);
        }
    };
    let ending = |candidate: &[u8]| run_child(target, candidate, &scratch);
    let wanted = ending(&data);
    if wanted == Ending::Passed {
        eprintln!(
            "minimize: {target} passes on {}: nothing to minimize",
            input.display()
        );
        return ExitCode::FAILURE;
    }
    let (started, original) = (Instant::now(), data.len());
    let deadline = started + Duration::from_secs(budget);
    let data = shrink(data, |candidate| ending(candidate) == wanted, deadline);
    let _ = std::fs::remove_file(&scratch);
    if let Err(e) = std::fs::write(output, &data) {
        eprintln!("minimize: cannot write {}: {e}", output.display());
        return ExitCode::from(2);
    }
    eprintln!(
        "minimize: {target}: {original} bytes -> {} bytes, still {wanted:?}, in {:.1} s",
        data.len(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// A scratch file for candidates.
fn tempfile() -> std::io::Result<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!("fuseflow-minimize-{}", std::process::id()));
    std::fs::write(&path, [])?;
    Ok(path)
}

/// How `target` ends on `candidate`, run in a child process.
fn run_child(target: &str, candidate: &[u8], scratch: &Path) -> Ending {
    if std::fs::write(scratch, candidate).is_err() {
        return Ending::Passed;
    }
    let Ok(exe) = std::env::current_exe() else {
        return Ending::Passed;
    };
    let child = Command::new(exe)
        .arg("--once")
        .arg(target)
        .arg(scratch)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Ending::Passed;
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ending::Passed,
            Ok(Some(status)) => {
                return Ending::Failed(status.signal().or(status.code()).unwrap_or(-1));
            }
            Ok(None) if started.elapsed() > RUN_TIME => {
                let _ = child.kill();
                let _ = child.wait();
                return Ending::OutOfTime;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return Ending::Passed,
        }
    }
}
