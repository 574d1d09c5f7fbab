//! [`step_io!`]: a step's kind and port names, written once per step.

/// The `kind`, `inputs` and `outputs` methods of a [`Step`](crate::pipeline::Step)
/// impl whose ports do not depend on its parameters:
/// `step_io!("scale", ["data", "stats"], ["out"]);`.
macro_rules! step_io {
    ($kind:literal, [$($input:literal),*], [$($output:literal),*]) => {
        fn kind(&self) -> &str {
            $kind
        }
        fn inputs(&self) -> &[&str] {
            &[$($input),*]
        }
        fn outputs(&self) -> &[&str] {
            &[$($output),*]
        }
    };
}

pub(crate) use step_io;
