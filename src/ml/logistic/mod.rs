//! Logistic regression, binary and multinomial, with L2, trained by Newton's
//! method with a backtracking line search.
//!
//! Minimizes `sum_i loss_i + (l2 / 2) * |W|^2`, the objective of
//! scikit-learn's `LogisticRegression` with `C = 1 / l2` (intercepts are not
//! penalized). Binary problems use one sigmoid output; problems with more
//! classes a softmax over one output per class. Each iteration makes one
//! parallel pass for the loss, gradient and Hessian (accumulated in f64, in a
//! fixed block order, so results repeat bit for bit; the Hessian's products
//! are f32, which steers the steps but not where they stop), solves the
//! Newton system by Cholesky, and one cheap loss pass per line-search trial.
//! The point expected to meet the tolerance skips its Hessian
//! (`expected_norm`). Training stops when the largest gradient component
//! of the mean objective is below
//! `tolerance`.
//!
//! The loop ([`newton`]) is written once over an [`Objective`]: the host's
//! f64 passes here, or the device passes of
//! `on_device` (f32 kernels, partial sums added in f64
//! on the host), where it stops at the larger of `tolerance` and the
//! gradient an f32 pass can resolve ([`Precision`]).

mod host;
mod siblings;

use super::design::Design;
use super::linalg::cholesky_solve;
use crate::error::{Error, Result};
use host::Problem;

pub use host::outputs;
pub use siblings::fit_siblings;

/// Training settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticConfig {
    /// L2 penalty on the weights (`1 / C` in scikit-learn terms).
    pub l2: f64,
    /// Stop when `max |gradient| / rows` falls below this.
    pub tolerance: f64,
    /// Most Newton iterations.
    pub max_iterations: usize,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        LogisticConfig {
            l2: 1.0,
            tolerance: 1e-10,
            max_iterations: 100,
        }
    }
}

/// A fitted model: one output (binary, probability of class 1) or one per class.
#[derive(Clone, Debug, PartialEq)]
pub struct LogisticFit {
    /// Number of classes (2 for binary).
    pub classes: usize,
    /// Row-major `outputs x features` weights (`outputs` = 1 for binary, else `classes`).
    pub weights: Vec<f64>,
    /// One intercept per output.
    pub intercepts: Vec<f64>,
    /// Newton iterations run.
    pub iterations: usize,
    /// Mean log-loss on the training rows (without the penalty).
    pub log_loss: f64,
    /// `max |gradient| / rows` at the end.
    pub gradient_norm: f64,
    /// Whether `tolerance` was reached within `max_iterations`.
    pub converged: bool,
    /// The tolerance used: the configured one, or the precision's floor
    /// when that is larger (f32 on a GPU cannot resolve 1e-10).
    pub tolerance: f64,
    /// The arithmetic of the passes over the data: `"f64"` on the host,
    /// `"f32"` on a device.
    pub precision: &'static str,
}

impl LogisticFit {
    /// Number of outputs: 1 for binary, the number of classes otherwise.
    pub fn outputs(&self) -> usize {
        self.intercepts.len()
    }
}

/// Train on features `x` and class indices `y` (`0..classes`), on the host in f64.
///
/// # Errors
/// [`Error::InvalidParameter`] for a negative or non-finite `l2` or
/// `tolerance`, fewer than two classes, or a Newton system that cannot be
/// solved (collinear features with `l2 = 0`; the message says to set `l2 > 0`).
pub fn fit(
    step: &str,
    x: &Design,
    y: &[u32],
    classes: usize,
    config: &LogisticConfig,
) -> Result<LogisticFit> {
    check(step, classes, config)?;
    let problem = Problem::new(x, y, classes);
    newton(step, &problem, classes, config)
}

/// Check the settings and the class count, before any data moves.
///
/// # Errors
/// As [`fit`].
pub fn check(step: &str, classes: usize, config: &LogisticConfig) -> Result<()> {
    if !(config.l2 >= 0.0 && config.l2.is_finite()) {
        return Err(invalid(
            step,
            format!("l2 must be a finite number >= 0, got {}", config.l2),
        ));
    }
    if !(config.tolerance > 0.0 && config.tolerance.is_finite()) {
        return Err(invalid(
            step,
            format!(
                "tolerance must be a positive number, got {}",
                config.tolerance
            ),
        ));
    }
    if classes < 2 {
        return Err(invalid(
            step,
            format!("logistic regression needs at least two classes, got {classes}"),
        ));
    }
    Ok(())
}

fn invalid(step: &str, message: String) -> Error {
    Error::InvalidParameter {
        step: step.into(),
        message,
    }
}

/// What an evaluation computes beyond the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// The loss alone: a line-search trial.
    Loss,
    /// The loss and its gradient: a point expected to meet the tolerance.
    Gradient,
    /// The loss, gradient and Hessian: a point the next step starts from.
    Hessian,
}

/// Sums over the rows at one point, without the penalty: what an
/// [`Objective`] evaluates.
#[derive(Clone, Debug, Default)]
pub struct Sums {
    /// Sum of log-losses.
    pub loss: f64,
    /// Gradient of the summed loss (empty for [`Order::Loss`]).
    pub gradient: Vec<f64>,
    /// Its Hessian, row-major `m x m`, both triangles filled (empty unless
    /// [`Order::Hessian`] was asked for).
    pub hessian: Vec<f64>,
}

/// How exactly an [`Objective`] computes: what the stopping rule and the
/// line search may expect of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Precision {
    /// `"f64"` or `"f32"`, as recorded in the model.
    pub name: &'static str,
    /// The smallest `max |gradient| / rows` the objective resolves: Newton
    /// stops at `max(tolerance, gradient_floor)`.
    pub gradient_floor: f64,
    /// The line search gives up below this step length.
    pub min_step: f64,
    /// Multinomial Hessians are singular along a common shift of the
    /// intercepts; this fraction of the largest diagonal entry is added to
    /// the diagonal, above the rounding of the Hessian's entries.
    pub damping: f64,
    /// The relative error of an evaluated objective. When a full Newton
    /// step changes the objective by less than this, the objective cannot
    /// judge it, and the step is taken if it shrinks the gradient.
    pub objective_noise: f64,
    /// After a line search that gave up, training stops when the objective
    /// moved by at most this fraction of itself: no further progress is
    /// possible at this precision.
    pub objective_resolution: f64,
}

impl Precision {
    /// The host's passes: loss and gradient exact in f64, the Hessian's
    /// products in f32 (see `ml::gram::hessian_gram`), so the
    /// damping is set above the f32 rounding of its entries.
    pub const F64: Precision = Precision {
        name: "f64",
        gradient_floor: 0.0,
        min_step: 1e-10,
        damping: 1e-5,
        // A sum of f64 losses in blocks of thousands rounds at about this
        // relative size: a last Newton step near the optimum changes the
        // objective by less, and is judged by the gradient instead.
        objective_noise: 1e-13,
        objective_resolution: f64::EPSILON,
    };
}

/// The loss of logistic regression over some data, as Newton's method sees
/// it: parameters are `outputs x (features + 1)`, each output's weights
/// followed by its intercept.
pub trait Objective {
    /// Number of outputs: 1 for binary, the number of classes otherwise.
    fn outputs(&self) -> usize;
    /// Number of features.
    fn features(&self) -> usize;
    /// Number of rows.
    fn rows(&self) -> usize;
    /// How exactly [`Objective::evaluate`] computes.
    fn precision(&self) -> Precision;
    /// The summed loss at `theta` and, as `order` asks, its gradient and Hessian.
    ///
    /// # Errors
    /// What the device reports; the host never fails.
    fn evaluate(&self, theta: &[f64], order: Order) -> Result<Sums>;
}

/// Newton's method with a backtracking line search on `objective`: the
/// loop every device shares; only [`Objective::evaluate`] differs.
///
/// # Errors
/// As [`fit`], and what the objective reports.
pub fn newton(
    step: &str,
    objective: &dyn Objective,
    classes: usize,
    config: &LogisticConfig,
) -> Result<LogisticFit> {
    let (k, w) = (objective.outputs(), objective.features() + 1);
    let precision = objective.precision();
    let tolerance = config.tolerance.max(precision.gradient_floor);
    let m = k * w;
    let evaluate = |theta: &[f64], order: Order| -> Result<State> {
        let sums = objective.evaluate(theta, order)?;
        Ok(State::new(sums, theta, config.l2, w))
    };
    let mut theta = vec![0.0; m];
    let mut state = evaluate(&theta, Order::Hessian)?;
    let mut hessian = std::mem::take(&mut state.hessian);
    let mut iterations = 0;
    let n = objective.rows() as f64;
    let norm = |g: &[f64]| g.iter().fold(0.0f64, |a, v| a.max(v.abs())) / n;
    // The gradient's norm before the last step, when that step was a full
    // Newton step from a fresh Hessian: the measure of its convergence.
    let mut newton_from: Option<f64> = None;
    while norm(&state.gradient) > tolerance && iterations < config.max_iterations {
        iterations += 1;
        let direction = newton_direction(step, &hessian, &state.gradient, classes > 2, &precision)?;
        let previous = (state.objective, norm(&state.gradient));
        let order = match newton_from {
            Some(before) if expected_norm(before, previous.1) < HESSIAN_MARGIN * tolerance => {
                Order::Gradient
            }
            _ => Order::Hessian,
        };
        let t;
        (theta, state, t) = line_search(
            &evaluate, &theta, &state, &direction, order, &precision, &norm,
        )?;
        let fresh = !state.hessian.is_empty();
        if fresh {
            hessian = std::mem::take(&mut state.hessian);
        }
        newton_from = (fresh && t == 1.0).then_some(previous.1);
        if (previous.0 - state.objective).abs() <= precision.objective_resolution * previous.0.abs()
            && t < precision.min_step
        {
            break; // No further progress is possible at this precision.
        }
    }
    if config.l2 == 0.0 && state.loss / n < 1e-6 {
        // Without a penalty the optimum of separable data is at infinity: any
        // finite answer would be arbitrary.
        return Err(invalid(step, "the features separate the classes perfectly, so without a penalty the weights grow without bound; set l2 > 0".into()));
    }
    let (mut weights, mut intercepts) = unpack(&theta, k, w);
    if classes > 2 {
        // Softmax is unchanged by a common shift of the intercepts: report them centred.
        let mean = intercepts.iter().sum::<f64>() / intercepts.len() as f64;
        intercepts.iter_mut().for_each(|b| *b -= mean);
    }
    weights.shrink_to_fit();
    Ok(LogisticFit {
        classes,
        weights,
        intercepts,
        iterations,
        log_loss: state.loss / n,
        gradient_norm: norm(&state.gradient),
        converged: norm(&state.gradient) <= tolerance,
        tolerance,
        precision: precision.name,
    })
}

/// How far below the tolerance the gradient is expected to fall before the
/// Hessian at the next point is skipped: a margin for the estimate.
const HESSIAN_MARGIN: f64 = 0.1;

/// The gradient's norm expected after the next full Newton step, when the
/// last one took it from `before` to `now`: Newton converges
/// quadratically, `now ≈ c * before²`, so the next is about
/// `c * now² = now³ / before²`. When that is well below the tolerance, the
/// next point is evaluated without its Hessian, usually the last of the fit;
/// should the tolerance not be met there after all, the step after it reuses
/// the previous Hessian (a descent direction still, as the line search
/// checks).
fn expected_norm(before: f64, now: f64) -> f64 {
    now * (now / before) * (now / before)
}

/// The Newton direction `H⁻¹ g` for `hessian` and `gradient`. With
/// `softmax`, the Hessian is
/// damped first: softmax ignores a common shift of all intercepts, so the
/// Hessian is singular along it, and a tiny damping makes the system definite
/// without moving the optimum. Binary problems are left undamped, so that
/// collinear features without a penalty are reported, not hidden.
fn newton_direction(
    step: &str,
    hessian: &[f64],
    gradient: &[f64],
    softmax: bool,
    precision: &Precision,
) -> Result<Vec<f64>> {
    let m = gradient.len();
    let mut hessian = hessian.to_vec();
    if softmax {
        let scale = (0..m)
            .map(|i| hessian[i * m + i])
            .fold(0.0f64, f64::max)
            .max(1.0);
        for i in 0..m {
            hessian[i * m + i] += precision.damping * scale;
        }
    }
    cholesky_solve(&hessian, gradient, m).ok_or_else(|| {
        invalid(step, "the Newton system is singular: the features are linearly dependent or separate the classes perfectly; set l2 > 0".into())
    })
}

/// A backtracking (Armijo) line search from `theta` along `-direction`:
/// the accepted parameters, their state, and the step length taken. The full
/// Newton step is tried with an evaluation of `order`, which becomes the next
/// iteration's state when it is accepted (the usual case near the optimum);
/// shorter steps are tried with cheap loss-only passes, and the point
/// accepted among them is evaluated with its Hessian.
fn line_search(
    evaluate: &dyn Fn(&[f64], Order) -> Result<State>,
    theta: &[f64],
    state: &State,
    direction: &[f64],
    order: Order,
    precision: &Precision,
    norm: &dyn Fn(&[f64]) -> f64,
) -> Result<(Vec<f64>, State, f64)> {
    let slope: f64 = state
        .gradient
        .iter()
        .zip(direction)
        .map(|(g, d)| g * d)
        .sum();
    let step = |t: f64| -> Vec<f64> {
        theta
            .iter()
            .zip(direction)
            .map(|(p, d)| p - t * d)
            .collect()
    };
    let armijo = |objective: f64, t: f64| objective <= state.objective - 1e-4 * t * slope;
    let full = step(1.0);
    let trial = evaluate(&full, order)?;
    let mut t = 1.0;
    let within_noise = (trial.objective - state.objective).abs()
        <= precision.objective_noise * state.objective.abs();
    let shrinks = precision.objective_noise > 0.0
        && within_noise
        && norm(&trial.gradient) < norm(&state.gradient);
    if armijo(trial.objective, t) || shrinks {
        return Ok((full, trial, t));
    }
    let accepted = loop {
        t *= 0.5;
        let candidate = step(t);
        if armijo(evaluate(&candidate, Order::Loss)?.objective, t) || t < precision.min_step {
            break candidate;
        }
    };
    let state = evaluate(&accepted, Order::Hessian)?;
    Ok((accepted, state, t))
}

/// Split `outputs x width` parameters into row-major weights and intercepts.
fn unpack(theta: &[f64], outputs: usize, w: usize) -> (Vec<f64>, Vec<f64>) {
    let weights = (0..outputs)
        .flat_map(|a| theta[a * w..a * w + w - 1].to_vec())
        .collect();
    let intercepts = (0..outputs).map(|a| theta[a * w + w - 1]).collect();
    (weights, intercepts)
}

/// The objective at one point: the sums plus the penalty.
struct State {
    /// Sum of log-losses.
    loss: f64,
    /// Loss plus penalty.
    objective: f64,
    gradient: Vec<f64>,
    hessian: Vec<f64>,
}

impl State {
    /// Add the L2 penalty (intercepts, the last of each output's `w`
    /// parameters, are not penalized) to the summed loss at `theta`.
    fn new(sums: Sums, theta: &[f64], l2: f64, w: usize) -> State {
        let m = theta.len();
        let penalty_weights = |i: usize| i % w != w - 1;
        let penalty: f64 = (0..m)
            .filter(|&i| penalty_weights(i))
            .map(|i| theta[i] * theta[i])
            .sum::<f64>()
            * l2
            / 2.0;
        let Sums {
            loss,
            mut gradient,
            mut hessian,
        } = sums;
        if !gradient.is_empty() {
            for i in (0..m).filter(|&i| penalty_weights(i)) {
                gradient[i] += l2 * theta[i];
            }
        }
        if !hessian.is_empty() {
            for i in (0..m).filter(|&i| penalty_weights(i)) {
                hessian[i * m + i] += l2;
            }
        }
        State {
            loss,
            objective: loss + penalty,
            gradient,
            hessian,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::data::Rng;

    /// An objective that records the order of every evaluation and, with
    /// `hessian_scale` != 1, hands out a Hessian scaled by it: a poor
    /// Hessian that slows Newton down to linear convergence.
    struct Recorded<'a> {
        inner: Problem<'a>,
        hessian_scale: f64,
        orders: RefCell<Vec<Order>>,
    }

    impl Objective for Recorded<'_> {
        fn outputs(&self) -> usize {
            self.inner.outputs()
        }
        fn features(&self) -> usize {
            self.inner.features()
        }
        fn rows(&self) -> usize {
            self.inner.rows()
        }
        fn precision(&self) -> Precision {
            self.inner.precision()
        }
        fn evaluate(&self, theta: &[f64], order: Order) -> Result<Sums> {
            self.orders.borrow_mut().push(order);
            let mut sums = self.inner.evaluate(theta, order)?;
            sums.hessian
                .iter_mut()
                .for_each(|h| *h *= self.hessian_scale);
            Ok(sums)
        }
    }

    fn data(rows: usize) -> (Design, Vec<u32>) {
        let mut rng = Rng::new(11);
        let d = 3;
        let x: Vec<f64> = (0..rows * d).map(|_| rng.normal()).collect();
        let y = (0..rows)
            .map(|i| {
                let z = 0.8 * x[i] - 0.5 * x[rows + i] + 0.3 * x[2 * rows + i];
                u32::from(rng.uniform() < sigmoid(z))
            })
            .collect();
        let features = (0..d).map(|j| format!("f{j}")).collect();
        (Design { rows, features, x }, y)
    }

    fn sigmoid(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }

    fn fit_recorded(x: &Design, y: &[u32], hessian_scale: f64) -> (LogisticFit, Vec<Order>) {
        let objective = Recorded {
            inner: Problem::new(x, y, 2),
            hessian_scale,
            orders: RefCell::new(Vec::new()),
        };
        let fit = newton("t", &objective, 2, &LogisticConfig::default()).unwrap();
        (fit, objective.orders.into_inner())
    }

    #[test]
    fn the_point_expected_to_converge_skips_its_hessian() {
        let (x, y) = data(5_000);
        let (fit, orders) = fit_recorded(&x, &y, 1.0);
        assert!(fit.converged, "{fit:?}");
        assert_eq!(orders.last(), Some(&Order::Gradient), "{orders:?}");
        let hessians = orders.iter().filter(|&&o| o == Order::Hessian).count();
        // The start and every accepted point but the last.
        assert_eq!(hessians, fit.iterations, "{orders:?}");
    }

    #[test]
    fn a_wrong_expectation_falls_back_on_the_previous_hessian() {
        let (x, y) = data(5_000);
        let (exact, _) = fit_recorded(&x, &y, 1.0);
        // A Hessian a little too large shortens every step: the gradient
        // shrinks by a constant factor r (about scale - 1), slower than the
        // quadratic rate expected of it. For r near 0.05 some point is
        // expected to converge while it does not; every fit must still
        // reach the same answer.
        let mut premature = 0;
        for scale in (0..20).map(|i| 1.01 + 0.005 * f64::from(i)) {
            let (slow, orders) = fit_recorded(&x, &y, scale);
            assert!(slow.converged, "scale {scale}: {slow:?}");
            let last = orders.len() - 1;
            premature += (0..last).filter(|&i| orders[i] == Order::Gradient).count();
            for (a, b) in slow.weights.iter().zip(&exact.weights) {
                assert!((a - b).abs() < 1e-7, "scale {scale}: {a} vs {b}");
            }
        }
        assert!(premature > 0, "no point was expected to converge too early");
    }
}
