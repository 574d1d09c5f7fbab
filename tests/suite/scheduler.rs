//! The scheduler: independent steps run at the same time (proven with a
//! rendezvous, not with timings), dependent steps run in order, diamonds join
//! correctly, and every output can be fetched.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Schema, SchemaRef};
use fuseflow::ir::col;
use fuseflow::pipeline::io::MemorySource;
use fuseflow::pipeline::prep::{Derive, FitStats, Scale, ScaleMethod, Split};
use fuseflow::pipeline::{Pipeline, Step, StepContext, Table};
use fuseflow::{Error, Result, RunOptions};

fn data(n: usize) -> Table {
    table(vec![(
        "x",
        f64_array(&(0..n).map(|i| Some(i as f64)).collect::<Vec<_>>()),
    )])
}

/// An n-party rendezvous with a timeout: each caller waits until all parties
/// have arrived. Returns false if the others did not arrive in time.
struct Rendezvous {
    parties: usize,
    arrived: Mutex<usize>,
    all_here: Condvar,
}

impl Rendezvous {
    fn new(parties: usize) -> Arc<Self> {
        Arc::new(Rendezvous {
            parties,
            arrived: Mutex::new(0),
            all_here: Condvar::new(),
        })
    }

    fn meet(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_here.notify_all();
        while *arrived < self.parties {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            arrived = self
                .all_here
                .wait_timeout(arrived, deadline - now)
                .unwrap()
                .0;
        }
        true
    }
}

/// Waits at a rendezvous, then passes its input through. If the other parties
/// never arrive, the steps were not running at the same time.
#[derive(Debug)]
struct Meet {
    rendezvous: Arc<Rendezvous>,
    timeout: Duration,
}

impl std::fmt::Debug for Rendezvous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rendezvous({})", self.parties)
    }
}

impl Step for Meet {
    fn kind(&self) -> &str {
        "meet"
    }
    fn inputs(&self) -> &[&str] {
        &["data"]
    }
    fn outputs(&self) -> &[&str] {
        &["out"]
    }
    fn params(&self) -> String {
        format!("timeout={:?}", self.timeout)
    }
    fn output_schemas(&self, _: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        Ok(vec![inputs[0].clone()])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        if self.rendezvous.meet(self.timeout) {
            Ok(vec![inputs[0].clone()])
        } else {
            Err(Error::execution(
                ctx.name,
                format!(
                    "ran sequentially: the other steps did not arrive within {:?}",
                    self.timeout
                ),
            ))
        }
    }
}

/// `parties` rendezvous steps, all reading one source.
fn fan_out(parties: usize, timeout: Duration) -> Pipeline {
    let rendezvous = Rendezvous::new(parties);
    let mut p = Pipeline::new("fan-out");
    p.add("src", MemorySource::new(data(10)));
    for i in 0..parties {
        p.add(
            format!("meet{i}"),
            Meet {
                rendezvous: Arc::clone(&rendezvous),
                timeout,
            },
        )
        .input("data", "src");
    }
    p
}

#[test]
fn independent_steps_run_at_the_same_time() {
    // Each step blocks until the other has started: the run can only succeed
    // if both are running concurrently.
    let run = fan_out(2, Duration::from_secs(10)).run().unwrap();
    for name in ["meet0", "meet1"] {
        assert_eq!(run.output(name).unwrap().num_rows(), 10);
    }
    // Explicitly two concurrent steps is enough; three parties need three.
    fan_out(2, Duration::from_secs(10))
        .run_with(&RunOptions {
            max_concurrent_steps: 2,
            ..RunOptions::default()
        })
        .unwrap();
    fan_out(3, Duration::from_secs(10))
        .run_with(&RunOptions {
            max_concurrent_steps: 3,
            ..RunOptions::default()
        })
        .unwrap();
}

#[test]
fn the_rendezvous_detects_sequential_execution() {
    // With one step at a time the first party waits alone: the detector used
    // above really fails when steps do not overlap.
    let err = expect_err(
        fan_out(2, Duration::from_millis(300)).run_with(&RunOptions {
            max_concurrent_steps: 1,
            ..RunOptions::default()
        }),
        "one step at a time",
    );
    assert!(
        matches!(&err, Error::Execution { step, .. } if step.starts_with("meet")),
        "{err:?}"
    );
    assert_msg(&err, &["ran sequentially"]);
}

/// Records when it starts and ends, checks that its input carries the marker
/// of the previous step in the chain, and appends its own.
#[derive(Debug)]
struct Stage {
    log: Arc<Mutex<Vec<String>>>,
    expect_previous: Option<&'static str>,
    running: Arc<AtomicUsize>,
}

impl Step for Stage {
    fn kind(&self) -> &str {
        "stage"
    }
    fn inputs(&self) -> &[&str] {
        &["data"]
    }
    fn outputs(&self) -> &[&str] {
        &["out"]
    }
    fn params(&self) -> String {
        String::new()
    }
    fn output_schemas(&self, ctx: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        let mut fields: Vec<_> = inputs[0].fields().iter().cloned().collect();
        fields.push(Arc::new(arrow_schema::Field::new(
            ctx.name,
            arrow_schema::DataType::Float64,
            true,
        )));
        Ok(vec![Arc::new(Schema::new(fields))])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let concurrent = self.running.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(format!("start {}", ctx.name));
        let input = inputs[0].concat()?;
        if let Some(previous) = self.expect_previous {
            assert!(
                input.column_by_name(previous).is_some(),
                "{} started before {previous} produced its output",
                ctx.name
            );
        }
        // Give an out-of-order start a chance to show up in the log.
        std::thread::sleep(Duration::from_millis(20));
        let marker = f64_array(&vec![Some(1.0); input.num_rows()]);
        let mut columns: Vec<ArrayRef> = input.columns().to_vec();
        columns.push(marker);
        let schema = self.output_schemas(ctx, &[input.schema()])?.remove(0);
        let out = RecordBatch::try_new(schema, columns)?;
        self.log.lock().unwrap().push(format!("end {}", ctx.name));
        self.running.fetch_sub(1, Ordering::SeqCst);
        assert_eq!(concurrent, 0, "{} overlapped another chain step", ctx.name);
        Ok(vec![Table::from_batch(out)])
    }
}

#[test]
fn a_dependent_chain_runs_in_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let running = Arc::new(AtomicUsize::new(0));
    let chain = ["s1", "s2", "s3", "s4", "s5"];
    let mut p = Pipeline::new("chain");
    // Added in reverse so that insertion order cannot explain the result.
    for (i, name) in chain.iter().enumerate().rev() {
        let previous = if i == 0 { "src" } else { chain[i - 1] };
        p.add(
            *name,
            Stage {
                log: Arc::clone(&log),
                expect_previous: (i > 0).then(|| chain[i - 1]),
                running: Arc::clone(&running),
            },
        )
        .input("data", previous);
    }
    p.add("src", MemorySource::new(data(5)));
    let run = p.run().unwrap();
    let expected: Vec<String> = chain
        .iter()
        .flat_map(|n| [format!("start {n}"), format!("end {n}")])
        .collect();
    assert_eq!(*log.lock().unwrap(), expected);
    assert_eq!(
        names(run.output("s5").unwrap()),
        ["x", "s1", "s2", "s3", "s4", "s5"]
    );
    // Reports: finish order, and each step started after its producer ended.
    let order: Vec<&str> = run.steps.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["src", "s1", "s2", "s3", "s4", "s5"]);
    for pair in run.steps.windows(2) {
        assert!(
            pair[1].started >= pair[0].started + pair[0].duration,
            "{} started before {} ended",
            pair[1].name,
            pair[0].name
        );
    }
    assert!(
        run.steps
            .iter()
            .all(|r| r.rows == [5] && r.bytes.len() == 1 && r.bytes[0] > 0)
    );
    assert_eq!(run.steps[1].kind, "stage");
}

/// Puts the columns of `right` beside those of `left` (same row count).
#[derive(Debug)]
struct Zip;

impl Step for Zip {
    fn kind(&self) -> &str {
        "zip"
    }
    fn inputs(&self) -> &[&str] {
        &["left", "right"]
    }
    fn outputs(&self) -> &[&str] {
        &["out"]
    }
    fn params(&self) -> String {
        String::new()
    }
    fn output_schemas(&self, _: StepContext, inputs: &[SchemaRef]) -> Result<Vec<SchemaRef>> {
        let fields: Vec<_> = inputs[0]
            .fields()
            .iter()
            .chain(
                inputs[1]
                    .fields()
                    .iter()
                    .filter(|f| inputs[0].field_with_name(f.name()).is_err()),
            )
            .cloned()
            .collect();
        Ok(vec![Arc::new(Schema::new(fields))])
    }
    fn run(&self, ctx: StepContext, inputs: &[Table]) -> Result<Vec<Table>> {
        let (left, right) = (inputs[0].concat()?, inputs[1].concat()?);
        let schema = self
            .output_schemas(ctx, &[left.schema(), right.schema()])?
            .remove(0);
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| {
                left.column_by_name(f.name())
                    .or_else(|| right.column_by_name(f.name()))
                    .unwrap()
                    .clone()
            })
            .collect();
        Ok(vec![Table::from_batch(RecordBatch::try_new(
            schema, columns,
        )?)])
    }
}

#[test]
fn a_diamond_produces_correct_results() {
    //        src
    //       /   \
    //   double  plus_one
    //       \   /
    //        zip
    let mut p = Pipeline::new("diamond");
    p.add("zip", Zip)
        .input("left", "double")
        .input("right", "plus_one");
    p.add(
        "src",
        MemorySource::new(chunked(&data(3000).concat().unwrap(), 4)),
    );
    p.add("double", Derive::new([("d", col("x") * 2.0)]))
        .input("data", "src");
    p.add("plus_one", Derive::new([("p", col("x") + 1.0)]))
        .input("data", "src");
    let run = p.run().unwrap();
    let out = run.output("zip").unwrap();
    assert_eq!(names(out), ["x", "d", "p"]);
    let x = f64_column(out, "x");
    let d = f64_column(out, "d");
    let p1 = f64_column(out, "p");
    for i in 0..3000 {
        let v = i as f64;
        assert_eq!((x[i], d[i], p1[i]), (Some(v), Some(2.0 * v), Some(v + 1.0)));
    }

    // A diamond of built-in steps: statistics of the data, applied to the data.
    let mut p = Pipeline::new("scale diamond");
    p.add("src", MemorySource::new(data(101)));
    p.add("fit", FitStats::new(["x"])).input("data", "src");
    p.add("scale", Scale::new(ScaleMethod::MinMax))
        .input("data", "src")
        .input("stats", "fit");
    let run = p.run().unwrap();
    let scaled = f64_column(run.output("scale").unwrap(), "x");
    let expected: Vec<Option<f64>> = (0..101).map(|i| Some(i as f64 / 100.0)).collect();
    assert_f64_close(&scaled, &expected, "minmax over a diamond");
}

#[test]
fn every_output_is_fetchable_by_reference() {
    let mut p = Pipeline::new("outputs");
    p.add("src", MemorySource::new(data(1000)));
    p.add("split", Split::new(0.3, 5)).input("data", "src");
    p.add("train2", Derive::new([("y", col("x") * 2.0)]))
        .input("data", "split.train");
    p.add("fit", FitStats::new(["x"]))
        .input("data", "split.train");
    let run = p.run().unwrap();

    let keys: BTreeSet<&str> = run.output_names().into_iter().collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "src.out",
            "split.train",
            "split.test",
            "train2.out",
            "fit.stats"
        ])
    );
    // Every output by its full reference, single-output steps also by name.
    for key in &keys {
        run.output(key).unwrap();
    }
    for (short, full) in [
        ("src", "src.out"),
        ("train2", "train2.out"),
        ("fit", "fit.stats"),
    ] {
        let (a, b) = (run.output(short).unwrap(), run.output(full).unwrap());
        assert_eq!(a.concat().unwrap(), b.concat().unwrap(), "{short}");
    }
    let (train, test) = (
        run.output("split.train").unwrap().num_rows(),
        run.output("split.test").unwrap().num_rows(),
    );
    assert_eq!(train + test, 1000);
    assert_eq!(run.output("train2").unwrap().num_rows(), train);
    assert_eq!(run.output("fit").unwrap().num_rows(), 1);

    // A multi-output step needs its port; unknown references list what exists.
    for bad in ["split", "nope", "src.nope"] {
        let err = expect_err(run.output(bad), bad);
        assert!(matches!(err, Error::InvalidParameter { .. }), "{err:?}");
        assert_msg(&err, &[&format!("'{bad}'"), "split.test", "src.out"]);
    }

    // One report per step.
    let reported: BTreeSet<&str> = run.steps.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(reported, BTreeSet::from(["src", "split", "train2", "fit"]));
    let split = run.steps.iter().find(|r| r.name == "split").unwrap();
    assert_eq!(split.rows, [train, test]);
    assert!(run.duration >= split.duration);
}

#[test]
fn many_independent_branches_all_complete_with_few_workers() {
    for workers in [1, 2, 3] {
        let mut p = Pipeline::new("wide");
        p.add("src", MemorySource::new(data(100)));
        for i in 0..12 {
            p.add(format!("b{i}"), Derive::new([("y", col("x") + i as f64)]))
                .input("data", "src");
        }
        let run = p
            .run_with(&RunOptions {
                max_concurrent_steps: workers,
                ..RunOptions::default()
            })
            .unwrap();
        for i in 0..12 {
            let y = f64_column(run.output(&format!("b{i}")).unwrap(), "y");
            assert_eq!(y[10], Some(10.0 + i as f64), "{workers} workers, b{i}");
        }
        assert_eq!(run.steps.len(), 13);
    }
    // An empty pipeline runs and produces nothing.
    let run = Pipeline::new("empty").run().unwrap();
    assert!(run.output_names().is_empty() && run.steps.is_empty());
}
