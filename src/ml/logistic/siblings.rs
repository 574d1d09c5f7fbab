//! Sibling fits: logistic models on the same rows and features that differ
//! only in their settings (L2, tolerance, iterations), trained together.
//!
//! Each sibling runs the ordinary [`newton`] loop on its own thread; its
//! objective hands every evaluation to a shared [`Batch`], which waits
//! until each sibling still training has asked for one and then evaluates
//! them all in one pass over the rows ([`Problem::evaluate_many`]): each
//! row block is read from memory once for all siblings. A sibling's sums
//! are exactly those it would get alone, so it takes the same steps and
//! reaches the same answer bit for bit; one that fails (bad settings, a
//! singular system) or finishes early leaves the batch, and the others go
//! on.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::host::Problem;
use super::{LogisticConfig, LogisticFit, Objective, Order, Precision, Sums, check, newton};
use crate::error::{Error, Result, panic_message};
use crate::ml::design::Design;

/// Train one model per entry of `configs` on features `x` and class
/// indices `y`, sharing every pass over the data; the results in the order
/// of `configs`, each what [`fit`](super::fit) with that config returns.
pub fn fit_siblings(
    step: &str,
    x: &Design,
    y: &[u32],
    classes: usize,
    configs: &[LogisticConfig],
) -> Vec<Result<LogisticFit>> {
    let problem = Problem::new(x, y, classes);
    let batch = Batch::new(&problem, configs.len());
    std::thread::scope(|scope| {
        let fits: Vec<_> = (configs.iter().enumerate())
            .map(|(i, config)| {
                let batch = &batch;
                scope.spawn(move || {
                    let _leaves = Leaving { batch };
                    check(step, classes, config)?;
                    newton(step, &Sibling { batch, i }, classes, config)
                })
            })
            .collect();
        (fits.into_iter())
            .map(|fit| {
                fit.join().unwrap_or_else(|panic| {
                    let message = format!("panicked: {}", panic_message(&panic));
                    Err(Error::execution(step, message))
                })
            })
            .collect()
    })
}

/// The evaluations the siblings asked for, run together.
struct Batch<'p> {
    problem: &'p Problem<'p>,
    state: Mutex<Pending>,
    answered: Condvar,
}

struct Pending {
    /// Each sibling's request (parameters, order), until evaluated.
    requests: Vec<Option<(Vec<f64>, Order)>>,
    /// Each sibling's answer, until it takes it.
    answers: Vec<Option<Result<Sums>>>,
    /// Siblings still training.
    active: usize,
}

impl<'p> Batch<'p> {
    fn new(problem: &'p Problem<'p>, siblings: usize) -> Self {
        Batch {
            problem,
            state: Mutex::new(Pending {
                requests: vec![None; siblings],
                answers: (0..siblings).map(|_| None).collect(),
                active: siblings,
            }),
            answered: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sibling `i`'s sums at `theta`, evaluated with the others'.
    fn evaluate(&self, i: usize, theta: &[f64], order: Order) -> Result<Sums> {
        let mut state = self.lock();
        state.requests[i] = Some((theta.to_vec(), order));
        self.run_when_complete(&mut state);
        loop {
            if let Some(answer) = state.answers[i].take() {
                return answer;
            }
            state = (self.answered.wait(state)).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A sibling stopped training: the others no longer wait for it.
    fn leave(&self) {
        let mut state = self.lock();
        state.active -= 1;
        self.run_when_complete(&mut state);
    }

    /// Once every sibling still training has asked, evaluate every request
    /// in one pass and wake the siblings. The lock is held meanwhile: every
    /// sibling that could take it is waiting for its answer.
    fn run_when_complete(&self, state: &mut Pending) {
        let asked: Vec<usize> = (0..state.requests.len())
            .filter(|&i| state.requests[i].is_some())
            .collect();
        if asked.is_empty() || asked.len() < state.active {
            return;
        }
        let requests: Vec<(Vec<f64>, Order)> = (asked.iter())
            .filter_map(|&i| state.requests[i].take())
            .collect();
        let views: Vec<(&[f64], Order)> = (requests.iter())
            .map(|(theta, order)| (theta.as_slice(), *order))
            .collect();
        let pass = || self.problem.evaluate_many(&views);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(pass)) {
            Ok(sums) => {
                for (&i, sums) in asked.iter().zip(sums) {
                    state.answers[i] = Some(Ok(sums));
                }
            }
            Err(panic) => {
                for &i in &asked {
                    let message = format!("a shared pass panicked: {}", panic_message(&panic));
                    state.answers[i] = Some(Err(Error::Internal(message)));
                }
            }
        }
        self.answered.notify_all();
    }
}

/// Leaves the batch when its sibling's thread ends, however it ends.
struct Leaving<'b, 'p> {
    batch: &'b Batch<'p>,
}

impl Drop for Leaving<'_, '_> {
    fn drop(&mut self) {
        self.batch.leave();
    }
}

/// One sibling's view of the batch: the problem's objective, evaluated
/// with the others.
struct Sibling<'b, 'p> {
    batch: &'b Batch<'p>,
    i: usize,
}

impl Objective for Sibling<'_, '_> {
    fn outputs(&self) -> usize {
        self.batch.problem.outputs()
    }

    fn features(&self) -> usize {
        self.batch.problem.features()
    }

    fn rows(&self) -> usize {
        self.batch.problem.rows()
    }

    fn precision(&self) -> Precision {
        self.batch.problem.precision()
    }

    fn evaluate(&self, theta: &[f64], order: Order) -> Result<Sums> {
        self.batch.evaluate(self.i, theta, order)
    }
}
