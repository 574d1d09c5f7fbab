//! The run queue: runs triggered over REST wait here, recorded as `queued`,
//! until one of a fixed number of worker threads runs them through the
//! engine (`Pipeline::run_with`), so that runs never occupy the server's
//! async threads. A run queued or running here can be cancelled.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use axum::http::StatusCode;
use crossbeam_channel::{Receiver, Sender, unbounded};

use super::api::{ApiError, ApiResult};
use crate::backend::DeviceChoice;
use crate::error::{Error, Result};
use crate::exec::{Cancel, Rerun, RunOptions};
use crate::pipeline::Pipeline;
use crate::track::{PipelineRecord, RunId, RunStatus, RunSummary};
use crate::workspace::Workspace;

/// A run to start: its record, its pipeline, and how to run it.
pub(crate) struct Ticket {
    /// The pipeline, parsed with the trigger's parameters.
    pub(crate) pipeline: Pipeline,
    /// The spec text, recorded with the run.
    pub(crate) spec: String,
    /// Every parameter's value, recorded with the run.
    pub(crate) params: Vec<(String, String)>,
    /// Whether to run every step, reusing nothing.
    pub(crate) rerun_all: bool,
}

/// A ticket with the run recorded for it and its flag.
type Job = (RunId, Ticket, Cancel);

/// The queue and its workers.
pub(crate) struct RunQueue {
    shared: Arc<Shared>,
    jobs: Mutex<Option<Sender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    capacity: usize,
}

/// What the queue and its workers share.
struct Shared {
    ws: Arc<Workspace>,
    device: DeviceChoice,
    /// Runs queued and not yet taken by a worker.
    waiting: AtomicUsize,
    /// The runs queued or running here, each with its flag.
    cancels: Mutex<HashMap<RunId, Cancel>>,
}

impl Shared {
    fn cancels(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Cancel>> {
        self.cancels.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RunQueue {
    /// A queue of at most `capacity` waiting runs, run `concurrency` at a
    /// time on `device` in `ws`.
    pub(crate) fn start(
        ws: Arc<Workspace>,
        device: DeviceChoice,
        concurrency: usize,
        capacity: usize,
    ) -> Result<RunQueue> {
        let shared = Arc::new(Shared {
            ws,
            device,
            waiting: AtomicUsize::new(0),
            cancels: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = unbounded();
        let workers = (0..concurrency.max(1))
            .map(|i| {
                let (shared, rx) = (shared.clone(), rx.clone());
                std::thread::Builder::new()
                    .name(format!("fuseflow-serve-run-{i}"))
                    .spawn(move || work(&shared, &rx))
                    .map_err(|e| Error::Internal(format!("cannot start a run worker: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RunQueue {
            shared,
            jobs: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
            capacity,
        })
    }

    /// Record `ticket`'s run as queued and queue it; answers its id.
    ///
    /// # Errors
    /// 503 when the queue is full or the server is stopping; the run store's
    /// errors.
    pub(crate) fn submit(&self, ticket: Ticket) -> ApiResult<RunId> {
        let full = || {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the run queue is full ({} runs waiting); retry when some have started",
                    self.capacity
                ),
            )
        };
        let waiting = &self.shared.waiting;
        if waiting.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(full());
        }
        let record = PipelineRecord {
            name: ticket.pipeline.name().to_string(),
            spec_hash: blake3::hash(ticket.spec.as_bytes()).to_hex().to_string(),
            spec: ticket.spec.clone(),
        };
        let params = crate::track::run_params_text(None, &ticket.params);
        let queued = self.shared.ws.runs().queue_run(&record, &params);
        let run = match queued {
            Ok(run) => run,
            Err(e) => {
                waiting.fetch_sub(1, Ordering::AcqRel);
                return Err(e.into());
            }
        };
        let cancel = Cancel::new();
        self.shared.cancels().insert(run.clone(), cancel.clone());
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let sent = jobs
            .as_ref()
            .is_some_and(|tx| tx.send((run.clone(), ticket, cancel)).is_ok());
        if !sent {
            drop(jobs);
            waiting.fetch_sub(1, Ordering::AcqRel);
            self.shared.cancels().remove(&run);
            let reason = "the server was stopping when the run was triggered";
            self.shared
                .ws
                .runs()
                .end_queued(&run, RunStatus::Cancelled, reason)?;
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason));
        }
        Ok(run)
    }

    /// Cancel `run`: a queued one ends `cancelled` at once; a running one
    /// stops before its next step. Answers the run as it reads now.
    ///
    /// # Errors
    /// 404 for an unknown run; 409 for one that has ended, or that another
    /// process runs.
    pub(crate) fn cancel(&self, run: &str) -> ApiResult<RunSummary> {
        let runs = self.shared.ws.runs();
        let summary = runs.run(run)?.summary;
        let id = summary.id.clone();
        if summary.status.is_finished() {
            return Err(ApiError::conflict(format!(
                "run {id} has already ended ({}); there is nothing to cancel",
                summary.status
            )));
        }
        let Some(flag) = self.shared.cancels().get(&id).cloned() else {
            return Err(ApiError::conflict(format!(
                "run {id} is {} in another process (pid {} on {}), not in this server; \
                 stop it there",
                summary.status, summary.pid, summary.host
            )));
        };
        flag.cancel();
        runs.end_queued(&id, RunStatus::Cancelled, "cancelled before it started")?;
        Ok(runs.run(id.as_str())?.summary)
    }

    /// Stop: cancel every queued and running run, wait for the workers.
    pub(crate) fn shutdown(&self) {
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        for (run, flag) in self.shared.cancels().iter() {
            flag.cancel();
            let stopped = "the server stopped before the run started";
            // A run that started is ended by its worker; a failure to record
            // this one leaves it queued by a process that is gone, which reads
            // as interrupted.
            let _ = (self.shared.ws.runs()).end_queued(run, RunStatus::Cancelled, stopped);
        }
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

/// A worker: runs tickets until the queue closes.
fn work(shared: &Shared, jobs: &Receiver<Job>) {
    for (run, ticket, cancel) in jobs {
        shared.waiting.fetch_sub(1, Ordering::AcqRel);
        let options = RunOptions {
            workspace: Some(shared.ws.clone()),
            spec: Some(ticket.spec),
            params: ticket.params,
            device: shared.device,
            rerun: if ticket.rerun_all {
                Rerun::All
            } else {
                Rerun::Nothing
            },
            queued_run: Some(run.clone()),
            cancel: Some(cancel),
            ..RunOptions::default()
        };
        let pipeline = ticket.pipeline;
        let outcome = catch_unwind(AssertUnwindSafe(|| pipeline.run_with(&options)));
        let error = match outcome {
            Ok(Ok(_)) | Ok(Err(Error::Cancelled)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("internal error: the run panicked; please report it".to_string()),
        };
        // A run that failed before it began (planning) is still queued, and
        // one that panicked is still running: end either as failed.
        if let Some(error) = error {
            let runs = shared.ws.runs();
            if runs.end_queued(&run, RunStatus::Failed, &error).ok() == Some(false)
                && runs
                    .run(run.as_str())
                    .is_ok_and(|d| !d.summary.status.is_finished())
            {
                let _ = runs.finish_run(&run, RunStatus::Failed, Some(&error));
            }
        }
        shared.cancels().remove(&run);
    }
}
