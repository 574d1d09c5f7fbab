//! Sweeps built in Rust: dimensions and their values, and a function that
//! builds one variant's pipeline from its assignment.

use std::fmt;
use std::str::FromStr;

use super::decl::{assignment_text, product};
use super::merge::Merge;
use crate::error::{Error, Result};
use crate::pipeline::graph::Pipeline;

/// A test that leaves a variant out.
type Exclusion = Box<dyn Fn(&Assignment) -> bool>;

/// A variant sweep over pipelines built in Rust, compiled as a spec's
/// `[sweep]` is: the cartesian product of the dimensions (the first varying
/// slowest), each variant's pipeline built by a function of its
/// assignment, merged into one pipeline in which each distinct step
/// instance (same name, kind, parameters, device, reuse and input
/// instances) appears once.
///
/// ```
/// use fuseflow::pipeline::io::MemorySource;
/// use fuseflow::pipeline::prep::{FitStats, Scale, ScaleMethod};
/// use fuseflow::pipeline::sweep::Sweep;
/// use fuseflow::pipeline::{Pipeline, Table};
/// # use std::sync::Arc;
/// # use arrow_array::{Float64Array, RecordBatch};
/// # let batch = RecordBatch::try_from_iter([(
/// #     "x", Arc::new(Float64Array::from(vec![1.0, 2.0, 4.0])) as _,
/// # )]).unwrap();
///
/// let sweep = Sweep::new().dimension("method", ["zscore", "minmax"]);
/// let pipeline = sweep.build("prep", |variant| {
///     let method = match variant.value("method")? {
///         "zscore" => ScaleMethod::ZScore,
///         _ => ScaleMethod::MinMax,
///     };
///     let mut p = Pipeline::new("prep");
///     p.add("raw", MemorySource::new(Table::from_batch(batch.clone())));
///     p.add("stats", FitStats::new(["x"])).inputs(["raw"]);
///     p.add("scaled", Scale::new(method)).inputs(["raw", "stats"]);
///     Ok(p)
/// })?;
/// // `raw` and `stats` once, `scaled` once per method.
/// assert_eq!(pipeline.step_names().count(), 4);
/// assert_eq!(pipeline.variants()[1].name, "method=minmax");
/// let run = pipeline.run()?;
/// assert_eq!(run.output("scaled[method=minmax]")?.num_rows(), 3);
/// # Ok::<(), fuseflow::Error>(())
/// ```
#[derive(Default)]
pub struct Sweep {
    dimensions: Vec<(String, Vec<String>)>,
    excluded: Vec<Exclusion>,
}

impl fmt::Debug for Sweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sweep")
            .field("dimensions", &self.dimensions)
            .field("exclusions", &self.excluded.len())
            .finish()
    }
}

/// One variant's value for each dimension of a [`Sweep`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pairs: Vec<(String, String)>,
}

impl Assignment {
    /// `(dimension, value)` in dimension order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The value of `dimension`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the dimension and listing the
    /// sweep's when it has no such dimension.
    pub fn value(&self, dimension: &str) -> Result<&str> {
        let found = self.pairs.iter().find(|(d, _)| d == dimension);
        found.map(|(_, v)| v.as_str()).ok_or_else(|| {
            let dims: Vec<&str> = self.pairs.iter().map(|(d, _)| d.as_str()).collect();
            invalid(format!(
                "the sweep has no dimension '{dimension}'; its dimensions: {}",
                dims.join(", ")
            ))
        })
    }

    /// The value of `dimension`, parsed (`variant.parse::<f64>("l2")?`).
    ///
    /// # Errors
    /// As [`Assignment::value`], and [`Error::InvalidParameter`] naming the
    /// dimension and the value when it does not parse.
    pub fn parse<T: FromStr>(&self, dimension: &str) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        let value = self.value(dimension)?;
        value.parse().map_err(|e| {
            invalid(format!(
                "dimension '{dimension}': value '{value}' does not parse as {}: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

impl Sweep {
    /// A sweep without dimensions yet.
    pub fn new() -> Sweep {
        Sweep::default()
    }

    /// Add a dimension with its values, written as text (`0.1`, `zscore`);
    /// variants and instances are named with them.
    pub fn dimension<V: ToString>(
        mut self,
        name: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Sweep {
        let values = values.into_iter().map(|v| v.to_string()).collect();
        self.dimensions.push((name.into(), values));
        self
    }

    /// Leave out the variants whose assignment `excluded` accepts.
    pub fn exclude(mut self, excluded: impl Fn(&Assignment) -> bool + 'static) -> Sweep {
        self.excluded.push(Box::new(excluded));
        self
    }

    /// The assignments of every variant, in order.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no dimension, a dimension without
    /// values or declared twice, or exclusions that leave no variant.
    pub fn assignments(&self) -> Result<Vec<Assignment>> {
        if self.dimensions.is_empty() {
            return Err(invalid(
                "a sweep needs a dimension: Sweep::dimension".into(),
            ));
        }
        for (d, (name, values)) in self.dimensions.iter().enumerate() {
            if values.is_empty() {
                return Err(invalid(format!("dimension '{name}' has no values")));
            }
            if self.dimensions[..d].iter().any(|(n, _)| n == name) {
                return Err(invalid(format!("dimension '{name}' is declared twice")));
            }
        }
        let groups: Vec<(Vec<usize>, usize)> = (self.dimensions.iter().enumerate())
            .map(|(d, (_, values))| (vec![d], values.len()))
            .collect();
        let all = product(self.dimensions.len(), &groups)
            .into_iter()
            .map(|choice| {
                let pairs = (self.dimensions.iter().zip(choice))
                    .map(|((name, values), c)| (name.clone(), values[c].clone()));
                pairs.collect::<Vec<_>>()
            });
        let assignments: Vec<Assignment> = all
            .map(|pairs| Assignment { pairs })
            .filter(|a| !self.excluded.iter().any(|excluded| excluded(a)))
            .collect();
        if assignments.is_empty() {
            return Err(invalid("the exclusions leave out every variant".into()));
        }
        Ok(assignments)
    }

    /// Build every variant's pipeline with `variant` and merge them into one
    /// pipeline named `name`, with its [`Pipeline::variants`].
    ///
    /// # Errors
    /// As [`Sweep::assignments`], and the first error `variant` returns,
    /// with the variant named where the error is a spec's.
    pub fn build(
        &self,
        name: &str,
        variant: impl Fn(&Assignment) -> Result<Pipeline>,
    ) -> Result<Pipeline> {
        let mut merge = Merge::default();
        for assignment in self.assignments()? {
            let text = assignment_text(&assignment.pairs);
            let pipeline = variant(&assignment).map_err(|e| e.in_variant(&text))?;
            merge.add_variant(text, assignment.pairs, pipeline);
        }
        Ok(merge.finish(name))
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidParameter {
        step: "sweep".into(),
        message,
    }
}
