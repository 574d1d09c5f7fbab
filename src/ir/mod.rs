//! The expression IR: what users write, and the typed arena the engine runs.
//!
//! - [`Expr`]: the tree users build (`col("x").log1p()`) or write as text ([`parse`]).
//! - [`ExprArena`]: type-checked nodes with typed [`ExprId`]s; children before parents.
//! - [`ops`]: one definition per elementwise operator, shared by every backend;
//!   [`math`]: the elementary functions they use that the C library would keep scalar.
//! - [`Projection`]: named expressions over one input schema, the unit a backend
//!   evaluates as one fused kernel.

pub mod arena;
pub mod dtype;
pub mod expr;
pub mod math;
mod numeric;
pub mod ops;
pub mod parse;
pub mod projection;
mod typecheck;

pub use arena::{Const, ExprArena, ExprId, Node};
pub use dtype::{DType, Scalar};
pub use expr::{Expr, col, if_else, lit};
pub use ops::{BinaryOp, Lang, UnaryOp};
pub(crate) use ops::{specialize_binary, specialize_unary};
pub use parse::parse_expr;
pub use projection::{OpByOp, Projection};
