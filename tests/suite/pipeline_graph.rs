//! Pipeline validation (names, references, cycles, schemas), `explain`, and
//! how step failures and panics are reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;
use arrow_schema::{ArrowError, SchemaRef};
use fuseflow::ir::col;
use fuseflow::pipeline::io::MemorySource;
use fuseflow::pipeline::prep::{
    Derive, Encode, EncodeMethod, FitCategories, FitStats, Scale, ScaleMethod, Select, Split,
    UnknownCategory,
};
use fuseflow::pipeline::{Pipeline, Step, StepContext, Table};
use fuseflow::{Error, Result};

pub(crate) fn data() -> Table {
    table(vec![
        ("x", f64_array(&[Some(1.0), Some(2.0), None])),
        ("s", str_array_of(&[Some("a"), None, Some("b")])),
    ])
}

/// What a [`Custom`] step does when it runs.
#[derive(Debug, Clone)]
pub(crate) enum Behavior {
    /// Outputs its first input (or the sample data) on every output port.
    PassThrough,
    /// Returns an internal error.
    FailInternal,
    /// Returns an Arrow error.
    FailArrow,
    /// Panics with a message.
    Panic(&'static str),
    /// Panics while planning its output schema.
    PanicInSchema,
    /// Returns one table too many.
    ExtraOutput,
}

/// A test step with configurable ports and behaviour; records whether it ran.
#[derive(Debug)]
pub(crate) struct Custom {
    inputs: Vec<&'static str>,
    outputs: Vec<&'static str>,
    behavior: Behavior,
    ran: Arc<AtomicBool>,
}

impl Custom {
    pub(crate) fn new(
        inputs: &[&'static str],
        outputs: &[&'static str],
        behavior: Behavior,
    ) -> Self {
        Custom {
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            behavior,
            ran: Arc::new(AtomicBool::new(false)),
        }
    }

    fn source() -> Self {
        Custom::new(&[], &["out"], Behavior::PassThrough)
    }

    fn pass() -> Self {
        Custom::new(&["data"], &["out"], Behavior::PassThrough)
    }
}

impl Step for Custom {
    fn kind(&self) -> &str {
        "custom"
    }
    fn inputs(&self) -> &[&str] {
        &self.inputs
    }
    fn outputs(&self) -> &[&str] {
        &self.outputs
    }
    fn params(&self) -> String {
        format!("behavior={:?}", self.behavior)
    }
    fn output_schemas(&self, _: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        if let Behavior::PanicInSchema = self.behavior {
            panic!("schema planning exploded");
        }
        let schema = inputs
            .first()
            .cloned()
            .unwrap_or_else(|| data().schema().clone());
        Ok(self.outputs.iter().map(|_| schema.clone()).collect())
    }
    fn run(&self, _: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        self.ran.store(true, Ordering::SeqCst);
        let table = inputs.first().cloned().unwrap_or_else(data);
        match &self.behavior {
            Behavior::PassThrough | Behavior::PanicInSchema => {
                Ok(self.outputs.iter().map(|_| table.clone()).collect())
            }
            Behavior::FailInternal => Err(Error::Internal("the widget broke".into())),
            Behavior::FailArrow => Err(Error::Arrow(ArrowError::ComputeError(
                "overflow in widget".into(),
            ))),
            Behavior::Panic(message) => panic!("{message}"),
            Behavior::ExtraOutput => Ok(vec![table; self.outputs.len() + 1]),
        }
    }
}

// ================================================================ names

#[test]
fn duplicate_step_names_are_rejected() {
    let mut p = Pipeline::new("dup");
    p.add("src", MemorySource::new(data()));
    p.add("clean", Derive::new([("y", col("x") * 2.0)]))
        .input("data", "src");
    p.add("clean", Select::new(["x"])).input("data", "src");
    let err = expect_err(p.validate(), "duplicate");
    assert!(
        matches!(&err, Error::DuplicateStep { step } if step == "clean"),
        "{err:?}"
    );
    assert_msg(&err, &["duplicate step name 'clean'"]);
    // Running validates first.
    assert!(matches!(p.run(), Err(Error::DuplicateStep { .. })));
}

#[test]
fn step_names_must_not_contain_a_dot_or_be_empty() {
    for bad in ["raw.data", ""] {
        let mut p = Pipeline::new("names");
        p.add(bad, MemorySource::new(data()));
        let err = expect_err(p.validate(), "bad name");
        assert!(
            matches!(&err, Error::InvalidParameter { step, .. } if step == bad),
            "{err:?}"
        );
        assert_msg(&err, &["'.'", "non-empty"]);
    }
}

// ============================================================ references

#[test]
fn a_reference_to_an_unknown_step_lists_the_steps() {
    let mut p = Pipeline::new("refs");
    p.add("src", MemorySource::new(data()));
    p.add("sel", Select::new(["x"])).input("data", "sorce");
    let err = expect_err(p.validate(), "unknown step");
    assert!(
        matches!(&err, Error::MissingInput { step, input, reference, .. }
            if step == "sel" && input == "data" && reference == "sorce"),
        "{err:?}"
    );
    assert_msg(
        &err,
        &["step 'sel'", "'sorce'", "no step named 'sorce'", "src, sel"],
    );
}

#[test]
fn a_reference_to_an_unknown_output_lists_the_outputs() {
    let mut p = Pipeline::new("refs");
    p.add("src", MemorySource::new(data()));
    p.add("split", Split::new(0.5, 1)).input("data", "src");
    p.add("sel", Select::new(["x"]))
        .input("data", "split.validation");
    let err = expect_err(p.validate(), "unknown output");
    assert!(
        matches!(&err, Error::MissingInput { reference, .. } if reference == "split.validation"),
        "{err:?}"
    );
    assert_msg(
        &err,
        &["step 'sel'", "no output 'validation'", "train, test"],
    );

    // The same for a single-output step.
    let mut p = Pipeline::new("refs");
    p.add("src", MemorySource::new(data()));
    p.add("sel", Select::new(["x"])).input("data", "src.output");
    let err = expect_err(p.validate(), "src.output");
    assert_msg(&err, &["no output 'output'", "its outputs are: out"]);
}

#[test]
fn a_multi_output_step_must_be_referenced_with_a_port() {
    let mut p = Pipeline::new("refs");
    p.add("src", MemorySource::new(data()));
    p.add("split", Split::new(0.5, 1)).input("data", "src");
    p.add("sel", Select::new(["x"])).input("data", "split");
    let err = expect_err(p.validate(), "bare multi-output reference");
    assert!(
        matches!(&err, Error::MissingInput { step, reference, .. } if step == "sel" && reference == "split"),
        "{err:?}"
    );
    assert_msg(&err, &["2 outputs", "'split.train' or 'split.test'"]);

    // With a port it validates.
    let mut p = Pipeline::new("refs");
    p.add("src", MemorySource::new(data()));
    p.add("split", Split::new(0.5, 1)).input("data", "src");
    p.add("sel", Select::new(["x"])).input("data", "split.test");
    p.validate().unwrap();
}

#[test]
fn unconnected_unknown_and_doubly_connected_input_ports() {
    // Scale needs `data` and `stats`; only `data` is connected.
    let mut p = Pipeline::new("ports");
    p.add("src", MemorySource::new(data()));
    p.add("scale", Scale::new(ScaleMethod::ZScore))
        .input("data", "src");
    let err = expect_err(p.validate(), "unconnected");
    assert!(
        matches!(&err, Error::MissingInput { step, input, .. } if step == "scale" && input == "stats"),
        "{err:?}"
    );
    assert_msg(&err, &["step 'scale'", "'stats'", "nothing is connected"]);

    // A port the step does not have.
    let mut p = Pipeline::new("ports");
    p.add("src", MemorySource::new(data()));
    p.add("sel", Select::new(["x"])).input("input", "src");
    let err = expect_err(p.validate(), "no such port");
    assert!(
        matches!(&err, Error::MissingInput { input, .. } if input == "input"),
        "{err:?}"
    );
    assert_msg(
        &err,
        &["'select' step has no such input", "its inputs are: data"],
    );

    // A source takes no inputs.
    let mut p = Pipeline::new("ports");
    p.add("a", MemorySource::new(data()));
    p.add("b", MemorySource::new(data())).input("data", "a");
    let err = expect_err(p.validate(), "input on a source");
    assert_msg(&err, &["step 'b'", "takes no inputs"]);

    // The same port twice.
    let mut p = Pipeline::new("ports");
    p.add("a", MemorySource::new(data()));
    p.add("sel", Select::new(["x"]))
        .input("data", "a")
        .input("data", "a");
    let err = expect_err(p.validate(), "connected twice");
    assert_msg(&err, &["step 'sel'", "more than once"]);

    // Positional `inputs` binds ports in declared order; extras are reported.
    let mut p = Pipeline::new("ports");
    p.add("src", MemorySource::new(data()));
    p.add("fit", FitStats::new(["x"])).inputs(["src"]);
    p.add("scale", Scale::new(ScaleMethod::ZScore))
        .inputs(["src", "fit"]);
    p.validate().unwrap();
    let mut p = Pipeline::new("ports");
    p.add("src", MemorySource::new(data()));
    p.add("sel", Select::new(["x"])).inputs(["src", "src"]);
    let err = expect_err(p.validate(), "extra positional input");
    assert_msg(&err, &["step 'sel'", "no such input"]);
}

// ================================================================ cycles

#[test]
fn a_two_step_cycle_shows_its_path() {
    let mut p = Pipeline::new("cycle");
    p.add("a", Derive::new([("y", col("x"))]))
        .input("data", "b");
    p.add("b", Derive::new([("z", col("x"))]))
        .input("data", "a");
    let err = expect_err(p.validate(), "cycle");
    assert!(
        matches!(&err, Error::Cycle { path } if path == &["a", "b", "a"]),
        "{err:?}"
    );
    assert_msg(&err, &["a -> b -> a"]);
}

#[test]
fn a_longer_cycle_reached_from_outside_shows_only_the_cycle() {
    // `d` consumes the cycle c -> a -> b -> c but is not on it; `src` feeds nothing on it.
    let mut p = Pipeline::new("cycle");
    p.add("d", Custom::pass()).input("data", "c");
    p.add("src", MemorySource::new(data()));
    p.add("a", Custom::pass()).input("data", "c");
    p.add("b", Custom::pass()).input("data", "a");
    p.add(
        "c",
        Custom::new(&["data", "extra"], &["out"], Behavior::PassThrough),
    )
    .input("data", "b")
    .input("extra", "src");
    let err = expect_err(p.validate(), "3-cycle");
    let Error::Cycle { path } = &err else {
        panic!("expected a cycle, got {err:?}")
    };
    assert_eq!(path.first(), path.last(), "the path is closed: {path:?}");
    let mut on_cycle: Vec<&str> = path[1..].iter().map(String::as_str).collect();
    on_cycle.sort_unstable();
    assert_eq!(on_cycle, ["a", "b", "c"], "{path:?}");
    // Data flows along the path: each step feeds the next.
    let feeds = |from: &str, to: &str| matches!((from, to), ("c", "a") | ("a", "b") | ("b", "c"));
    assert!(
        path.windows(2).all(|w| feeds(&w[0], &w[1])),
        "path follows the data: {path:?}"
    );
    assert_msg(&err, &[&path.join(" -> ")]);

    // A step reading its own output.
    let mut p = Pipeline::new("self");
    p.add("me", Custom::pass()).input("data", "me");
    let err = expect_err(p.validate(), "self-cycle");
    assert_msg(&err, &["me -> me"]);
}

// ================================================================ schemas

#[test]
fn schema_mismatches_name_the_step_and_column() {
    // Statistics of a numeric `x` applied to data where `x` is a string.
    let mut p = Pipeline::new("schema");
    p.add("train", MemorySource::new(data()));
    p.add(
        "strings",
        MemorySource::new(table(vec![("x", str_array_of(&[Some("1.5")]))])),
    );
    p.add("fit", FitStats::new(["x"])).input("data", "train");
    p.add("scale", Scale::new(ScaleMethod::MinMax))
        .input("data", "strings")
        .input("stats", "fit");
    let err = expect_err(p.validate(), "scale utf8");
    assert!(
        matches!(&err, Error::Schema { step, column, .. } if step == "scale" && column == "x"),
        "{err:?}"
    );
    assert_msg(&err, &["step 'scale', column 'x'", "numeric", "utf8"]);

    // A missing column several steps downstream is found before anything runs.
    let ran = Arc::new(AtomicBool::new(false));
    let mut source = Custom::source();
    source.ran = Arc::clone(&ran);
    let mut p = Pipeline::new("schema");
    p.add("src", source);
    p.add("keep", Select::new(["x"])).input("data", "src");
    p.add("use_s", Derive::new([("t", col("s"))]))
        .input("data", "keep");
    let err = expect_err(p.run(), "s was dropped");
    assert_msg(&err, &["'use_s'", "'s'"]);
    assert!(
        !ran.load(Ordering::SeqCst),
        "validation failed before any step ran"
    );
}

// ================================================================ explain

#[test]
fn explain_lists_steps_in_dependency_order_with_schemas() {
    let mut p = Pipeline::new("demo");
    // Added in reverse dependency order on purpose.
    p.add("scaled", Scale::new(ScaleMethod::ZScore))
        .input("data", "raw")
        .input("stats", "stats");
    p.add("stats", FitStats::new(["x"])).input("data", "raw");
    p.add("raw", MemorySource::new(data()));
    let text = p.explain().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "pipeline 'demo': 3 steps");
    let headers: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with(' ') && l.contains('['))
        .collect();
    assert_eq!(headers.len(), 3, "{text}");
    assert!(headers[0].starts_with("1. raw [memory]"), "{text}");
    assert!(
        headers[1].starts_with("2. stats [fit_stats] columns=[x]"),
        "{text}"
    );
    assert!(
        headers[2].starts_with("3. scaled [scale] method=zscore"),
        "{text}"
    );
    for expected in [
        "     out out: (x: f64, s: utf8)",
        "     in  data <- raw.out",
        "     out stats: (column: utf8, count: i64, nulls: i64, mean: f64, std: f64, min: f64, max: f64, median: f64, q1: f64, q3: f64)",
        "     in  stats <- stats.stats",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
    }
    // The scaled output's schema comes after its inputs.
    let scaled_at = lines
        .iter()
        .position(|l| l.starts_with("3. scaled"))
        .unwrap();
    assert_eq!(lines[scaled_at + 1], "     in  data <- raw.out");
    assert_eq!(lines[scaled_at + 2], "     in  stats <- stats.stats");
    assert_eq!(lines[scaled_at + 3], "     out out: (x: f64, s: utf8)");

    // Outputs only known after fitting say so.
    let mut p = Pipeline::new("onehot");
    p.add("raw", MemorySource::new(data()));
    p.add("cats", FitCategories::new(["s"]))
        .input("data", "raw");
    p.add(
        "enc",
        Encode::new(EncodeMethod::OneHot, UnknownCategory::Ignore),
    )
    .input("data", "raw")
    .input("categories", "cats");
    p.add("after", Select::new(["x"])).input("data", "enc");
    let text = p.explain().unwrap();
    assert_eq!(
        text.matches("(columns known after fitting)").count(),
        2,
        "enc and the step after it:\n{text}"
    );

    // An invalid pipeline cannot be explained; the validation error comes back.
    let mut p = Pipeline::new("bad");
    p.add("a", Select::new(["x"])).input("data", "nowhere");
    assert!(matches!(p.explain(), Err(Error::MissingInput { .. })));
}

// ======================================================= failing steps

#[test]
fn a_failing_step_is_named_and_stops_its_consumers() {
    for behavior in [Behavior::FailInternal, Behavior::FailArrow] {
        let downstream = Custom::pass();
        let downstream_ran = Arc::clone(&downstream.ran);
        let mut p = Pipeline::new("fail");
        p.add("src", MemorySource::new(data()));
        p.add("widget", Custom::new(&["data"], &["out"], behavior.clone()))
            .input("data", "src");
        p.add("after", downstream).input("data", "widget");
        let err = expect_err(p.run(), "failing step");
        assert!(
            matches!(&err, Error::Execution { step, .. } if step == "widget"),
            "{behavior:?}: {err:?}"
        );
        assert_msg(&err, &["step 'widget' failed"]);
        assert!(
            err.to_string().contains("the widget broke")
                || err.to_string().contains("overflow in widget"),
            "the cause is kept: {err}"
        );
        assert!(
            !downstream_ran.load(Ordering::SeqCst),
            "a consumer of a failed step must not run"
        );
    }

    // A built-in step failing on its data.
    let mut p = Pipeline::new("fail");
    p.add(
        "src",
        MemorySource::new(table(vec![("x", f64_array(&[Some(f64::NAN)]))])),
    );
    p.add("fit", FitStats::new(["x"])).input("data", "src");
    let err = expect_err(p.run(), "NaN fit");
    assert_msg(&err, &["step 'fit'", "'x'", "NaN"]);

    // A step returning the wrong number of outputs.
    let mut p = Pipeline::new("fail");
    p.add("src", MemorySource::new(data()));
    p.add(
        "extra",
        Custom::new(&["data"], &["out"], Behavior::ExtraOutput),
    )
    .input("data", "src");
    let err = expect_err(p.run(), "extra output");
    assert_msg(&err, &["'extra'", "2 outputs", "declares 1"]);
}

#[test]
fn a_panicking_step_becomes_an_error_naming_it() {
    let downstream = Custom::pass();
    let downstream_ran = Arc::clone(&downstream.ran);
    let mut p = Pipeline::new("panic");
    p.add("src", MemorySource::new(data()));
    p.add(
        "bomb",
        Custom::new(&["data"], &["out"], Behavior::Panic("kaboom 42")),
    )
    .input("data", "src");
    p.add("after", downstream).input("data", "bomb");
    let err = expect_err(p.run(), "panicking step");
    assert!(
        matches!(&err, Error::Execution { step, .. } if step == "bomb"),
        "{err:?}"
    );
    assert_msg(&err, &["step 'bomb' failed", "panicked", "kaboom 42"]);
    assert!(!downstream_ran.load(Ordering::SeqCst));

    // The pipeline (and the process) remain usable: run a healthy one after.
    let mut p = Pipeline::new("after panic");
    p.add("src", MemorySource::new(data()));
    p.add("ok", Custom::pass()).input("data", "src");
    assert_eq!(p.run().unwrap().output("ok").unwrap().num_rows(), 3);
}
