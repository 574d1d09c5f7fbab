//! Which process owns a run, and whether it is still alive.
//!
//! A run records the host name, pid and the pid's start time. A run still
//! marked `running` whose process is gone was killed (SIGKILL, power loss,
//! OOM killer) before it could finish. The start time guards against pid
//! reuse: a new process that happens to get the same pid started later.
//! Liveness is read from `/proc`, so it is known on Linux only; elsewhere, and
//! for runs begun on another host, a run is taken to be alive.

use std::fs;

/// The identity of a process, as stored with a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    /// The host name, or `unknown` when it cannot be read.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The process start time in clock ticks since boot (`/proc/<pid>/stat`
    /// field 22), or `None` where `/proc` is not available.
    pub start: Option<u64>,
}

impl Owner {
    /// The current process.
    pub(crate) fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            host: hostname(),
            pid,
            start: start_time(pid),
        }
    }

    /// Whether this owner is known to be gone: same host as us, and no process
    /// with its pid and start time exists.
    pub(crate) fn is_gone(&self, here: &Owner) -> bool {
        if self.host != here.host || here.start.is_none() {
            // Another machine, or no /proc here: we cannot tell.
            return false;
        }
        match start_time(self.pid) {
            None => true,
            Some(now) => self.start.is_some_and(|then| then != now),
        }
    }
}

/// The host name from the kernel, falling back to `$HOSTNAME`.
fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), or `None`
/// when there is no such process or no `/proc`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, is in parentheses and may contain spaces and
    // parentheses itself, so count fields from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    // `after` starts at field 3 (state); field 22 is 19 further on.
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive() {
        let me = Owner::current();
        assert!(!me.is_gone(&me));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn exited_process_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let here = Owner::current();
        let dead = Owner {
            pid,
            ..here.clone()
        };
        assert!(dead.is_gone(&here));
        let reused = Owner {
            start: here.start.map(|s| s + 1),
            ..here.clone()
        };
        assert!(
            reused.is_gone(&here),
            "a different start time means pid reuse"
        );
    }
}
