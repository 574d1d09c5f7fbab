pub mod error;
pub mod ir;
pub use error::{Error, Result};
