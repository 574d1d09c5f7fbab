//! Sibling fits: logistic models on the same rows and features that differ
//! only in their settings (L2, tolerance, iterations), trained together.
//!
//! Each sibling runs the ordinary [`newton`] loop on its own thread; its
//! objective hands every evaluation to a shared [`Batch`], which waits
//! until each sibling still training has asked for one and then evaluates
//! them all in one pass over the rows ([`Problem::evaluate_many`]): each
//! row block is read from memory once for all siblings. Siblings asking for
//! a Hessian at nearby parameters share one ([`hessian_leads`]), so an
//! iteration of K siblings costs one Hessian and K gradients. A sibling's
//! loss and gradient are exactly those it would get alone, so it reaches
//! its own optimum to the tolerance (bit for bit when it shares no
//! Hessian); one that fails (bad settings, a singular system) or finishes
//! early leaves the batch, and the others go on.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::host::Problem;
use super::{LogisticConfig, LogisticFit, Objective, Order, Precision, Sums, check, newton};
use crate::error::{Error, Result, panic_message};
use crate::ml::design::Design;

/// Train one model per sibling (the step it is for, and its config) on
/// features `x` and class indices `y`, sharing every pass over the data;
/// the results in the order of `siblings`, each what [`fit`](super::fit)
/// with that step and config returns.
pub fn fit_siblings(
    x: &Design,
    y: &[u32],
    classes: usize,
    siblings: &[(&str, LogisticConfig)],
) -> Vec<Result<LogisticFit>> {
    let problem = Problem::new(x, y, classes);
    let batch = Batch::new(&problem, siblings.len());
    std::thread::scope(|scope| {
        let fits: Vec<_> = (siblings.iter().enumerate())
            .map(|(i, &(step, ref config))| {
                let batch = &batch;
                scope.spawn(move || {
                    let _leaves = Leaving { batch };
                    check(step, classes, config)?;
                    newton(step, &Sibling { batch, i }, classes, config)
                })
            })
            .collect();
        (fits.into_iter().zip(siblings))
            .map(|(fit, &(step, _))| {
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
        let leads = hessian_leads(&requests);
        let views: Vec<(&[f64], Order)> = (requests.iter().zip(&leads))
            .map(|((theta, order), lead)| match lead {
                Some(_) => (theta.as_slice(), Order::Gradient),
                None => (theta.as_slice(), *order),
            })
            .collect();
        let pass = || {
            let mut sums = self.problem.evaluate_many(&views);
            for (r, lead) in leads.iter().enumerate() {
                if let Some(lead) = *lead {
                    sums[r].hessian = sums[lead].hessian.clone();
                }
            }
            sums
        };
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

/// How close (in the largest component, relative to the larger of 1 and
/// the lead's largest) a sibling's parameters must be to another's for it
/// to take that one's Hessian.
const SHARED_HESSIAN_DISTANCE: f64 = 1e-2;

/// For each request: the earlier request whose Hessian it takes, when both
/// ask for one at parameters within [`SHARED_HESSIAN_DISTANCE`]; `None`
/// for the requests that compute their own (or ask for none).
///
/// Siblings start at the same point and, differing only in their settings,
/// stay near one another while the data term dominates their objectives
/// (a penalty of 100 beside the Hessian of a million rows), so one data
/// Hessian serves them all, each adding its own penalty: the K Hessians of
/// a Newton iteration cost one. The Hessian only chooses the direction;
/// the line search and the exact gradient, which decides convergence, keep
/// each sibling's optimum its own, to the tolerance. Siblings that drift
/// apart compute their own again.
fn hessian_leads(requests: &[(Vec<f64>, Order)]) -> Vec<Option<usize>> {
    let mut leads: Vec<Option<usize>> = vec![None; requests.len()];
    for (r, (theta, order)) in requests.iter().enumerate() {
        if *order != Order::Hessian {
            continue;
        }
        let near = |lead: usize| {
            let lead_theta = &requests[lead].0;
            let scale = lead_theta.iter().fold(1.0f64, |a, v| a.max(v.abs()));
            let apart = theta
                .iter()
                .zip(lead_theta)
                .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
            apart <= SHARED_HESSIAN_DISTANCE * scale
        };
        leads[r] =
            (0..r).find(|&l| requests[l].1 == Order::Hessian && leads[l].is_none() && near(l));
    }
    leads
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Hessian requests at nearby parameters take the first one's; a far
    /// one, or a request for less, computes its own (or none).
    #[test]
    fn nearby_hessian_requests_share_the_first_ones() {
        let at = |v: f64, order| (vec![v, 2.0 * v, -1.0], order);
        let requests = [
            at(0.5, Order::Hessian),
            at(0.5 + 1e-3, Order::Hessian),
            at(0.9, Order::Hessian),
            at(0.5, Order::Gradient),
            at(0.9 - 1e-3, Order::Hessian),
            at(0.5 - 1e-3, Order::Loss),
        ];
        assert_eq!(
            hessian_leads(&requests),
            [None, Some(0), None, None, Some(2), None]
        );
    }
}
