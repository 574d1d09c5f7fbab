//! The crate's one error type.
//!
//! Variants are grouped by the phase that raises them (spec parsing, pipeline
//! validation, expression typing, I/O, run store, execution). Every message names the step,
//! column, expression or file involved and says what to do about it.
//!
//! A message is complete on its own, because it is also recorded as text in
//! the run store and shown by `fuseflow show`. The failures that come from
//! outside fuseflow (the operating system, SQLite, a device driver, a decoder,
//! a step's own error) also keep that underlying error as their
//! [`source`](std::error::Error::source), so a caller can inspect it (an
//! [`std::io::Error`]'s kind, say) and the CLI prints the chain of causes,
//! leaving out the ones the message already quotes.

use std::path::PathBuf;

/// The underlying error that caused an [`Error`], kept as its source.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result type used throughout fuseflow.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in fuseflow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pipeline spec file could not be parsed or names unknown keys or values.
    #[error("{file}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Spec {
        /// The spec file.
        file: PathBuf,
        /// 1-based line of the offending key, when known.
        line: Option<usize>,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// Two steps share a name.
    #[error(
        "duplicate step name '{step}': every step in a pipeline needs a unique name; rename one of them"
    )]
    DuplicateStep {
        /// The repeated name.
        step: String,
    },

    /// A step input refers to a step or output that does not exist.
    #[error("step '{step}': input '{input}' refers to '{reference}', {reason}")]
    MissingInput {
        /// The step whose input is dangling.
        step: String,
        /// The input port name.
        input: String,
        /// The reference as written (`step` or `step.output`).
        reference: String,
        /// Why the reference does not resolve, with the valid choices.
        reason: String,
    },

    /// The step graph has a cycle.
    #[error("the pipeline has a cycle: {}; a step cannot depend on its own output, remove one of these edges", path.join(" -> "))]
    Cycle {
        /// The steps on the cycle, first step repeated at the end.
        path: Vec<String>,
    },

    /// A step's input does not have the columns or types the step needs.
    #[error("step '{step}', column '{column}': {message}")]
    Schema {
        /// The step that rejected its input.
        step: String,
        /// The offending column.
        column: String,
        /// What was expected and what was found.
        message: String,
    },

    /// An expression does not type-check.
    #[error("expression `{expr}`: {message}")]
    Type {
        /// The expression (or sub-expression) at fault, as text.
        expr: String,
        /// What is wrong.
        message: String,
    },

    /// An expression written as text could not be parsed.
    #[error("cannot parse expression `{text}` at character {position}: {message}")]
    Parse {
        /// The full expression text.
        text: String,
        /// 0-based character offset of the problem.
        position: usize,
        /// What was expected.
        message: String,
    },

    /// A step parameter is out of range or inconsistent.
    #[error("step '{step}': {message}")]
    InvalidParameter {
        /// The step (or step kind, before it is named).
        step: String,
        /// Which parameter and what values are accepted.
        message: String,
    },

    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What failed, including the operating system's reason.
        message: String,
        /// The underlying error, when one caused this.
        #[source]
        cause: Option<Cause>,
    },

    /// The run store (the workspace's SQLite database of runs) could not be
    /// opened, read or written, or a query named a run, step or output that it
    /// does not hold.
    #[error("run store {path}: {message}")]
    RunStore {
        /// The database file.
        path: PathBuf,
        /// What failed and what to do about it.
        message: String,
        /// The underlying error, when one caused this.
        #[source]
        cause: Option<Cause>,
    },

    /// The run was cancelled ([`Cancel`](crate::exec::Cancel)): no step
    /// started after it; those that had finished are recorded and cached.
    #[error(
        "the run was cancelled; the steps that had finished are recorded and their outputs \
         cached, so running it again reuses them"
    )]
    Cancelled,

    /// A query named a run, step, output or published pipeline that the
    /// workspace does not hold (the message says what it does hold, or which
    /// command lists it).
    #[error("{message}")]
    NotFound {
        /// What is missing and where to look.
        message: String,
    },

    /// A content hash, cache key or stored cache-key record could not be parsed.
    #[error("cannot parse {what}: {message}")]
    CacheParse {
        /// What was being parsed, with the text when it is short.
        what: String,
        /// What is wrong with it.
        message: String,
    },

    /// A step failed while running.
    #[error("step '{step}' failed: {message}")]
    Execution {
        /// The failing step.
        step: String,
        /// What went wrong.
        message: String,
        /// The underlying error, when one caused this.
        #[source]
        cause: Option<Cause>,
    },

    /// A compute device (CUDA or wgpu) could not be used: it is missing, ran
    /// out of memory, rejected a kernel, or cannot compute a data type. The
    /// planner acts on [`DeviceFailure`] (fall back to the CPU, or retry in
    /// smaller chunks).
    #[error("device {device}: {message}")]
    Device {
        /// The device as reported (`cuda:0 NVIDIA H100`, `wgpu: llvmpipe [software]`).
        device: String,
        /// What kind of failure, for the planner.
        failure: DeviceFailure,
        /// What failed and what to do about it.
        message: String,
        /// The underlying error, when one caused this.
        #[source]
        cause: Option<Cause>,
    },

    /// An Arrow compute or layout error outside any single step.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),

    /// A bug in fuseflow: an invariant did not hold. Please report it.
    #[error("internal error (please report this): {0}")]
    Internal(String),
}

/// The kinds of [`Error::Device`], each calling for a different fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceFailure {
    /// No driver, no library or no device: the work runs on the CPU.
    Unavailable,
    /// The device ran out of memory: retry in smaller chunks, then on the CPU.
    OutOfMemory,
    /// A kernel failed to compile (a bug in fuseflow's code generation).
    Compile,
    /// A kernel failed to launch or run, or the device reported an error.
    Launch,
    /// The device cannot compute a data type (f64 or i64 on wgpu, strings anywhere).
    Unsupported,
}

impl DeviceFailure {
    /// Why work left the device, as notes say it.
    pub fn reason(self) -> &'static str {
        match self {
            DeviceFailure::OutOfMemory => "out of memory even in pieces",
            DeviceFailure::Compile => "the kernel did not compile",
            DeviceFailure::Launch => "the kernel failed",
            DeviceFailure::Unavailable => "the device is gone",
            DeviceFailure::Unsupported => "an unsupported type",
        }
    }
}

impl Error {
    /// A failure of a step while it ran, for steps written outside fuseflow.
    pub fn execution(step: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Execution {
            step: step.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// A device failure of `failure` kind on `device`.
    pub fn device(
        device: impl Into<String>,
        failure: DeviceFailure,
        message: impl Into<String>,
    ) -> Self {
        Error::Device {
            device: device.into(),
            failure,
            message: message.into(),
            cause: None,
        }
    }

    /// An I/O failure on `path`, `err` saying what failed.
    pub fn io(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        Error::Io {
            path: path.into(),
            message: err.to_string(),
            cause: None,
        }
    }

    /// An I/O failure on `path` whose message is the underlying error's own,
    /// kept as the cause.
    pub fn io_from(
        path: impl Into<PathBuf>,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::io(path, &err).caused_by(err)
    }

    /// A run store failure on the database at `path`.
    pub(crate) fn run_store(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::RunStore {
            path: path.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// Nothing of that name in the workspace: `message` says what is missing.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound {
            message: message.into(),
        }
    }

    /// Keep `err` as the underlying cause of this error. Only the variants
    /// that report failures from outside fuseflow (I/O, the run store,
    /// devices, a step's execution) carry a cause; others are returned as they
    /// are.
    pub fn caused_by(mut self, err: impl Into<Cause>) -> Self {
        match &mut self {
            Error::Io { cause, .. }
            | Error::RunStore { cause, .. }
            | Error::Device { cause, .. }
            | Error::Execution { cause, .. } => *cause = Some(err.into()),
            _ => {}
        }
        self
    }

    /// This error and its causes, outermost first, leaving out every cause
    /// whose text an outer message already quotes: what a person should read.
    pub fn chain(&self) -> Vec<String> {
        let mut lines = vec![self.to_string()];
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let text = cause.to_string();
            if !lines.iter().any(|line| line.contains(&text)) {
                lines.push(text);
            }
            next = cause.source();
        }
        lines
    }

    /// Whether a full disk (or quota) caused this error, at any depth: the
    /// one failure that freeing space mends.
    pub fn is_storage_full(&self) -> bool {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = next {
            let full = match (
                err.downcast_ref::<std::io::Error>(),
                err.downcast_ref::<rusqlite::Error>(),
            ) {
                (Some(io), _) => {
                    io.kind() == std::io::ErrorKind::StorageFull
                        || io.kind() == std::io::ErrorKind::QuotaExceeded
                }
                (_, Some(sql)) => sql.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
                _ => false,
            };
            if full {
                return true;
            }
            next = err.source();
        }
        false
    }

    /// A spec error found while building one variant of a sweep, naming it.
    pub(crate) fn in_variant(self, variant: &str) -> Self {
        match self {
            Error::Spec {
                file,
                line,
                message,
            } => Error::Spec {
                file,
                line,
                message: format!("sweep variant '{variant}': {message}"),
            },
            other => other,
        }
    }

    /// Attribute an error raised inside a step to that step, unless it already names one.
    pub(crate) fn in_step(self, step: &str) -> Self {
        match self {
            Error::Arrow(e) => Error::execution(step, e.to_string()).caused_by(e),
            Error::Internal(m) => {
                Error::execution(step, format!("internal error (please report this): {m}"))
            }
            other => other,
        }
    }
}

/// Return early with an error built from a format string.
macro_rules! bail {
    ($err:expr) => {
        return Err($err.into())
    };
}

/// Return early with an error unless a condition holds.
macro_rules! ensure {
    ($cond:expr, $err:expr) => {
        if !$cond {
            return Err($err.into());
        }
    };
}

pub(crate) use {bail, ensure};

thread_local! {
    /// How many [`contain`] calls the thread is inside.
    static CONTAINING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `f`'s value, or the message of a panic inside it. For calls into a
/// third-party decoder or driver with input fuseflow does not trust (a
/// damaged file, a missing CUDA library): a panic there is bad input to
/// report as an error naming it, not a bug, and [`panic_is_contained`] says
/// so to a panic hook meanwhile.
pub(crate) fn contain<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    CONTAINING.with(|depth| depth.set(depth.get() + 1));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINING.with(|depth| depth.set(depth.get() - 1));
    caught.map_err(|panic| panic_message(&panic))
}

/// Whether a panic on this thread now would be caught by fuseflow and
/// reported as an error (one from a decoder reading a damaged file, say). A
/// panic hook can stay silent for those: the `fuseflow` binary prints
/// nothing for them and a bug-report request for every other panic.
pub fn panic_is_contained() -> bool {
    CONTAINING.with(|depth| depth.get() > 0)
}

/// The message of a caught panic (`&str` or `String` payloads), for errors
/// that report a panic contained at a boundary.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_leaves_out_causes_the_message_already_quotes() {
        let os = std::io::Error::other("disk full");
        let quoted = Error::io("/w/x", format!("cannot store: {os}")).caused_by(os);
        assert_eq!(quoted.chain(), vec!["/w/x: cannot store: disk full"]);

        let outer = Error::execution("fit", "its output could not be cached").caused_by(quoted);
        assert_eq!(
            outer.chain(),
            vec![
                "step 'fit' failed: its output could not be cached",
                "/w/x: cannot store: disk full",
            ]
        );
        let source = std::error::Error::source(&outer).expect("kept");
        assert!(matches!(
            source.downcast_ref::<Error>(),
            Some(Error::Io { .. })
        ));
    }

    #[test]
    fn only_failures_from_outside_fuseflow_carry_a_cause() {
        let spec = Error::DuplicateStep { step: "a".into() }.caused_by(std::io::Error::other("x"));
        assert!(std::error::Error::source(&spec).is_none());
        let arrow = arrow_schema::ArrowError::ComputeError("overflow".into());
        let in_step = Error::Arrow(arrow).in_step("derive");
        assert!(matches!(&in_step, Error::Execution { step, .. } if step == "derive"));
        assert!(std::error::Error::source(&in_step).is_some());
    }
}
