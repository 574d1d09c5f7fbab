//! fuseflow's side of the scikit-learn reference comparison for training (see
//! `SKLEARN.md` here and `sklearn_compare.py`, which runs this and parses its
//! `FUSEFLOW_JSON` line).
//!
//! ```sh
//! cargo bench --bench peers_train_logistic -- --input data.parquet --label y --l2 1.0
//! cargo bench --bench peers_train_logistic -- --input d.parquet --label y --linear
//! ```
//!
//! Reads a Parquet, Arrow IPC or CSV file with the library's
//! [`fuseflow::data::files::BatchReader`], pulls the features out as a
//! [`Design`] and the label as class indices (or, with `--linear`, as a
//! regression target), and times ONLY the trainer: `fuseflow::ml::logistic::fit`
//! (Newton, `sum_i logloss_i + (l2/2)|w|^2`, intercept unpenalized, i.e.
//! scikit-learn's `LogisticRegression(C = 1/l2)`) or, with `--linear`,
//! `fuseflow::ml::linear::fit` (ridge, scikit-learn's `Ridge(alpha = l2)`).
//! Reading and the design build are timed too, but reported apart.
//!
//! Options:
//! - `--input PATH` the data file; without it, a small synthetic smoke run
//!   (what `cargo test --benches` does).
//! - `--label NAME` the label column (default `y`).
//! - `--l2 X` the L2 penalty (default 1.0).
//! - `--features a,b,...` the feature columns (default: every column but the label).
//! - `--repeats R` fits to run; the best time is reported (default 3).
//! - `--tolerance T`, `--max-iterations N` logistic settings (defaults: the
//!   library's, 1e-10 on `max |gradient| / rows` and 100).
//! - `--linear` fit ridge regression instead.
//! - `--profile` also time one Hessian-like pass (the weighted Gram matrix of
//!   the features plus the intercept column, as the Newton step builds it) and
//!   one loss-only pass (best of `max(repeats, 3)` each), to say where the
//!   fit's time goes.
//! - `--siblings K` also time K fits with L2 from 0.01 to 100 (log-spaced):
//!   one after another with `logistic::fit`, then together with
//!   `logistic::fit_siblings` (one pass over the data per evaluation for
//!   all of them); best of `repeats` each, reported as `siblings_*` in the
//!   JSON.
//! - `--out PATH` also write the JSON there.
//!
//! stdout carries exactly one line, `FUSEFLOW_JSON {...}`; everything else goes
//! to stderr. The JSON holds `fit_s` (best of repeats), `fit_all_s`, `iterations`,
//! `log_loss` (mean, unpenalized), `objective` (penalized sum), `gradient_norm`,
//! `converged`, `weights`, `intercepts`, `classes`, and `prob1`, the predicted
//! probability of the second class for the first 1000 rows (binary only); with
//! `--linear`: `weights`, `intercept`, `mse` and `pred` for the first 1000 rows.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use fuseflow::Table;
use fuseflow::data::files::{BatchReader, DEFAULT_BATCH_ROWS};
use fuseflow::ml::design::{Design, class_target, regression_target};
use fuseflow::ml::logistic::{self, LogisticConfig};
use fuseflow::ml::{gram, linear, pass};

const STEP: &str = "train_logistic_bench";
const PREDICTED_ROWS: usize = 1000;

struct Args {
    input: Option<PathBuf>,
    label: String,
    l2: f64,
    features: Vec<String>,
    repeats: usize,
    tolerance: f64,
    max_iterations: usize,
    linear: bool,
    profile: bool,
    siblings: usize,
    out: Option<PathBuf>,
}

fn fail(message: &str) -> ! {
    eprintln!("train_logistic: {message}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let defaults = LogisticConfig::default();
    let mut args = Args {
        input: None,
        label: "y".into(),
        l2: 1.0,
        features: Vec::new(),
        repeats: 3,
        tolerance: defaults.tolerance,
        max_iterations: defaults.max_iterations,
        linear: false,
        profile: false,
        siblings: 0,
        out: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> String {
            it.next()
                .cloned()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        let number = |name: &str, v: String| -> f64 {
            v.parse()
                .unwrap_or_else(|_| fail(&format!("{name}: '{v}' is not a number")))
        };
        let count = |name: &str, v: String| -> usize {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| fail(&format!("{name}: '{v}' is not a non-negative integer")))
        };
        match arg.as_str() {
            "--input" => args.input = Some(value("--input").into()),
            "--label" => args.label = value("--label"),
            "--l2" => args.l2 = number("--l2", value("--l2")),
            "--features" => {
                args.features = value("--features")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
            }
            "--repeats" => args.repeats = count("--repeats", value("--repeats")).max(1),
            "--tolerance" => args.tolerance = number("--tolerance", value("--tolerance")),
            "--max-iterations" => {
                args.max_iterations = count("--max-iterations", value("--max-iterations"));
            }
            "--linear" => args.linear = true,
            "--profile" => args.profile = true,
            "--siblings" => args.siblings = count("--siblings", value("--siblings")),
            "--out" => args.out = Some(value("--out").into()),
            "--bench" => {}
            other => eprintln!("train_logistic: ignoring unknown argument '{other}'"),
        }
    }
    args
}

/// A small synthetic binary problem (8 features, 20,000 rows) for smoke runs.
fn smoke_table() -> Table {
    let (rows, d) = (20_000usize, 8usize);
    // A splitmix64 stream: deterministic, no extra dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let cols: Vec<Vec<f64>> = (0..d)
        .map(|_| (0..rows).map(|_| 2.0 * uniform() - 1.0).collect())
        .collect();
    let y: Vec<i32> = (0..rows)
        .map(|i| {
            let z: f64 = 0.2
                + (0..d)
                    .map(|j| (j as f64 - 3.5) * 0.4 * cols[j][i])
                    .sum::<f64>();
            i32::from(uniform() < 1.0 / (1.0 + (-z).exp()))
        })
        .collect();
    let mut fields: Vec<Field> = (0..d)
        .map(|j| Field::new(format!("f{j}"), DataType::Float64, false))
        .collect();
    fields.push(Field::new("y", DataType::Int32, false));
    let mut arrays: Vec<ArrayRef> = cols
        .into_iter()
        .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef)
        .collect();
    arrays.push(Arc::new(Int32Array::from(y)));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .unwrap_or_else(|e| fail(&format!("smoke data: {e}")));
    Table::from_batch(batch)
}

fn read_table(path: &Path) -> Table {
    let reader =
        BatchReader::open(path, None, DEFAULT_BATCH_ROWS).unwrap_or_else(|e| fail(&e.to_string()));
    let schema = Arc::clone(reader.schema());
    let batches = reader
        .collect::<fuseflow::Result<Vec<_>>>()
        .unwrap_or_else(|e| fail(&e.to_string()));
    Table::try_new(schema, batches).unwrap_or_else(|e| fail(&e.to_string()))
}

/// A JSON number (`null` for NaN and infinities, which JSON cannot hold).
fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}") // shortest text that reads back to the same f64
    } else {
        "null".into()
    }
}

fn nums(vs: &[f64]) -> String {
    let mut s = String::from("[");
    for (i, v) in vs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&num(*v));
    }
    s.push(']');
    s
}

fn text(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds a flat JSON object field by field.
struct Json(Vec<(String, String)>);

impl Json {
    fn put(&mut self, key: &str, raw: String) {
        self.0.push((key.into(), raw));
    }
    fn finish(&self) -> String {
        let body: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{v}", text(k)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// `intercept + weights . x_i` for row `i` of the design.
fn linear_predictor(x: &Design, weights: &[f64], intercept: f64, i: usize) -> f64 {
    intercept
        + weights
            .iter()
            .enumerate()
            .map(|(j, w)| w * x.column(j)[i])
            .sum::<f64>()
}

/// Time one pass shaped like the Newton step's Hessian pass (weighted Gram
/// matrix of the features plus a ones column, per 4096-row block, combined in
/// block order) and one loss-only pass (linear predictor plus log-loss).
fn profile_passes(
    x: &Design,
    y: &[u32],
    weights: &[f64],
    intercept: f64,
    repeats: usize,
) -> (f64, f64) {
    let ones = vec![1.0; x.rows];
    let mut cols: Vec<&[f64]> = (0..x.width()).map(|j| x.column(j)).collect();
    cols.push(&ones);
    let p: Vec<f64> = (0..x.rows)
        .map(|i| 1.0 / (1.0 + (-linear_predictor(x, weights, intercept, i)).exp()))
        .collect();
    let hessian_weights: Vec<f64> = p.iter().map(|p| p * (1.0 - p)).collect();
    let mut best_gram = f64::MAX;
    let mut best_loss = f64::MAX;
    for _ in 0..repeats {
        let start = Instant::now();
        let gram = pass::fold_blocks(
            x.rows,
            |range| gram::hessian_gram(&cols, &hessian_weights, range),
            pass::add_into,
            Vec::new(),
        );
        black_box(gram);
        best_gram = best_gram.min(start.elapsed().as_secs_f64());

        let start = Instant::now();
        let loss = pass::fold_blocks(
            x.rows,
            |range| {
                let mut z = vec![intercept; range.len()];
                for (j, w) in weights.iter().enumerate() {
                    z.iter_mut()
                        .zip(&x.column(j)[range.clone()])
                        .for_each(|(z, x)| *z += w * x);
                }
                z.iter()
                    .zip(&y[range])
                    .map(|(z, &yi)| z.max(0.0) - f64::from(yi) * z + (-z.abs()).exp().ln_1p())
                    .sum::<f64>()
            },
            |a, b| *a += b,
            0.0,
        );
        black_box(loss);
        best_loss = best_loss.min(start.elapsed().as_secs_f64());
    }
    (best_gram, best_loss)
}

fn main() {
    let args = parse_args();
    let threads = rayon::current_num_threads();
    let (table, source, read_s) = match &args.input {
        Some(path) => {
            let start = Instant::now();
            let t = read_table(path);
            (t, path.display().to_string(), start.elapsed().as_secs_f64())
        }
        None => {
            eprintln!("train_logistic: no --input; smoke run on 20,000 synthetic rows");
            (smoke_table(), "synthetic smoke data".to_string(), 0.0)
        }
    };
    let features: Vec<String> = if args.features.is_empty() {
        table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| *n != args.label)
            .collect()
    } else {
        args.features.clone()
    };
    let start = Instant::now();
    let x = Design::from_table(STEP, &table, &features).unwrap_or_else(|e| fail(&e.to_string()));
    let design_s = start.elapsed().as_secs_f64();
    let (rows, d) = (x.rows, x.width());
    eprintln!(
        "train_logistic: {source}: {rows} rows x {d} features, read {read_s:.3} s, design {design_s:.3} s, {threads} threads, best of {}",
        args.repeats
    );

    let mut json = Json(Vec::new());
    json.put(
        "mode",
        text(if args.linear { "linear" } else { "logistic" }),
    );
    json.put("input", text(&source));
    json.put("rows", rows.to_string());
    json.put("features", d.to_string());
    json.put("feature_names", {
        let names: Vec<String> = features.iter().map(|f| text(f)).collect();
        format!("[{}]", names.join(","))
    });
    json.put("l2", num(args.l2));
    json.put("threads", threads.to_string());
    json.put("repeats", args.repeats.to_string());
    json.put("read_s", num(read_s));
    json.put("design_s", num(design_s));

    if args.linear {
        let y =
            regression_target(STEP, &table, &args.label).unwrap_or_else(|e| fail(&e.to_string()));
        let mut times = Vec::new();
        let mut fit = None;
        for _ in 0..args.repeats {
            let start = Instant::now();
            let f = black_box(linear::fit(STEP, &x, &y, args.l2))
                .unwrap_or_else(|e| fail(&e.to_string()));
            times.push(start.elapsed().as_secs_f64());
            fit = Some(f);
        }
        let fit = fit.expect("repeats >= 1");
        let best = times.iter().copied().fold(f64::MAX, f64::min);
        eprintln!(
            "train_logistic: ridge fit best {best:.6} s (all: {times:?}), mse {:.6e}",
            fit.mse
        );
        let pred: Vec<f64> = (0..rows.min(PREDICTED_ROWS))
            .map(|i| linear_predictor(&x, &fit.weights, fit.intercept, i))
            .collect();
        json.put("fit_s", num(best));
        json.put("fit_all_s", nums(&times));
        json.put("weights", nums(&fit.weights));
        json.put("intercept", num(fit.intercept));
        json.put("mse", num(fit.mse));
        json.put("pred", nums(&pred));
    } else {
        let classes =
            class_target(STEP, &table, &args.label).unwrap_or_else(|e| fail(&e.to_string()));
        let config = LogisticConfig {
            l2: args.l2,
            tolerance: args.tolerance,
            max_iterations: args.max_iterations,
        };
        let k = classes.names.len();
        let mut times = Vec::new();
        let mut fit = None;
        for _ in 0..args.repeats {
            let start = Instant::now();
            let f = black_box(logistic::fit(STEP, &x, &classes.index, k, &config))
                .unwrap_or_else(|e| fail(&e.to_string()));
            times.push(start.elapsed().as_secs_f64());
            fit = Some(f);
        }
        let fit = fit.expect("repeats >= 1");
        let best = times.iter().copied().fold(f64::MAX, f64::min);
        let penalty = 0.5 * args.l2 * fit.weights.iter().map(|w| w * w).sum::<f64>();
        let objective = fit.log_loss * rows as f64 + penalty;
        eprintln!(
            "train_logistic: logistic fit best {best:.6} s (all: {times:?}), {} Newton iterations, \
             log-loss {:.12}, |grad|/n {:.3e}, converged {}",
            fit.iterations, fit.log_loss, fit.gradient_norm, fit.converged
        );
        if args.siblings > 0 {
            let (separate, together) = time_siblings(&x, &classes.index, k, &config, &args);
            eprintln!(
                "train_logistic: {} sibling fits: one by one {separate:.3} s, together {together:.3} s ({:.2}x)",
                args.siblings,
                separate / together
            );
            json.put("siblings", args.siblings.to_string());
            json.put("siblings_separate_s", num(separate));
            json.put("siblings_together_s", num(together));
        }
        json.put("fit_s", num(best));
        json.put("fit_all_s", nums(&times));
        json.put("iterations", fit.iterations.to_string());
        json.put("converged", fit.converged.to_string());
        json.put("log_loss", num(fit.log_loss));
        json.put("objective", num(objective));
        json.put("gradient_norm", num(fit.gradient_norm));
        json.put("tolerance", num(args.tolerance));
        json.put("classes", {
            let names: Vec<String> = classes.names.iter().map(|n| text(n)).collect();
            format!("[{}]", names.join(","))
        });
        json.put("weights", nums(&fit.weights));
        json.put("intercepts", nums(&fit.intercepts));
        if fit.outputs() == 1 {
            let prob1: Vec<f64> = (0..rows.min(PREDICTED_ROWS))
                .map(|i| {
                    let z = linear_predictor(&x, &fit.weights, fit.intercepts[0], i);
                    1.0 / (1.0 + (-z).exp())
                })
                .collect();
            json.put("prob1", nums(&prob1));
            if args.profile {
                let (gram_s, loss_s) = profile_passes(
                    &x,
                    &classes.index,
                    &fit.weights,
                    fit.intercepts[0],
                    args.repeats.max(3),
                );
                // The start and each accepted full Newton step evaluate the
                // loss, gradient and Hessian in one pass, except the last
                // point, expected to converge, which skips its Hessian.
                let estimate = fit.iterations as f64 * (gram_s + loss_s) + loss_s;
                eprintln!(
                    "train_logistic: profile: one weighted-Gram pass {gram_s:.4} s, one loss pass {loss_s:.4} s; \
                     iterations x (gram+loss) + loss = {estimate:.3} s of the {best:.3} s fit"
                );
                json.put("profile_gram_pass_s", num(gram_s));
                json.put("profile_loss_pass_s", num(loss_s));
                json.put("profile_estimate_s", num(estimate));
            }
        }
    }
    let line = json.finish();
    if let Some(path) = &args.out {
        std::fs::write(path, format!("{line}\n"))
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
    }
    println!("FUSEFLOW_JSON {line}");
}

/// The best times of `args.siblings` fits (L2 log-spaced from 0.01 to 100,
/// the rest of `base`) one after another and together, checking that both
/// give the same models.
fn time_siblings(
    x: &Design,
    y: &[u32],
    k: usize,
    base: &LogisticConfig,
    args: &Args,
) -> (f64, f64) {
    let count = args.siblings;
    let configs: Vec<LogisticConfig> = (0..count)
        .map(|i| {
            let at = if count == 1 {
                0.5
            } else {
                i as f64 / (count - 1) as f64
            };
            LogisticConfig {
                l2: 10f64.powf(-2.0 + 4.0 * at),
                ..base.clone()
            }
        })
        .collect();
    let (mut separate, mut together) = (f64::MAX, f64::MAX);
    for _ in 0..args.repeats {
        let start = Instant::now();
        let alone: Vec<_> = configs
            .iter()
            .map(|c| logistic::fit(STEP, x, y, k, c))
            .collect();
        separate = separate.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let siblings: Vec<_> = configs.iter().map(|c| (STEP, c.clone())).collect();
        let fits = black_box(logistic::fit_siblings(x, y, k, &siblings));
        together = together.min(start.elapsed().as_secs_f64());
        // Each sibling's optimum is its own to the tolerance (its gradient
        // is exact; a shared Hessian only changes the path): parameters
        // within 1e-7 (the gradient tolerance over the smallest curvature).
        let mut apart = 0.0f64;
        for (a, b) in alone.iter().zip(&fits) {
            let (Ok(a), Ok(b)) = (a, b) else {
                fail("a sibling fit or its separate fit failed");
            };
            if !(a.converged && b.converged) {
                fail("a sibling fit or its separate fit did not converge");
            }
            let pairs = a.weights.iter().zip(&b.weights);
            let pairs = pairs.chain(a.intercepts.iter().zip(&b.intercepts));
            apart = pairs.fold(apart, |m, (x, y)| m.max((x - y).abs()));
        }
        if apart > 1e-7 {
            fail(&format!(
                "sibling fits differ from the separate fits by {apart:e}"
            ));
        }
        eprintln!(
            "train_logistic: siblings' parameters within {apart:.1e} of their separate fits'"
        );
    }
    (separate, together)
}
