//! Model algorithms, written once over dense f64 data: each training iteration
//! is a few parallel passes over the rows (gradient, Hessian, or minibatch
//! forward/backward) plus a small dense solve on the host.
//!
//! - `design`: training tables as checked, column-major matrices.
//! - `elementary`: `exp` and `log1p` as arithmetic that vectorizes (the
//!   logistic loss).
//! - `gram`: the weighted Gram matrix in register tiles (Hessians, normal
//!   equations).
//! - `linalg`: small dense solves (Cholesky).
//! - [`linear`], [`logistic`], [`mlp`]: the trainers, on the host in f64.
//! - `on_device`: the logistic and MLP trainers' passes through the
//!   [`Backend`](crate::backend::Backend) verbs, in f32 on any device; the
//!   outer loops (Newton, epochs) are the host trainers' own.
//! - [`metrics`]: evaluation metrics.
//! - [`model`]: the trained model as Arrow data, and its scoring expressions.

internal_mod!(design);
internal_mod!(elementary);
internal_mod!(gram);
internal_mod!(linalg);
pub mod linear;
pub mod logistic;
pub mod metrics;
pub mod mlp;
pub mod model;
internal_mod!(on_device);
internal_mod!(pass);
pub mod score;
