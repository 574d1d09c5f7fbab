//! Helpers for the parameters steps are built with.

/// Column names as owned strings, in order: what a step's constructor takes
/// as `impl IntoIterator<Item = S>`, kept.
pub(crate) fn names<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}
