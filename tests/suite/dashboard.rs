//! The dashboard in a real browser: headless Chromium (Debian's `chromium`)
//! opens a run triggered over REST while it waits behind a slower one, the
//! page follows it to its end without a reload, and its DAG and metrics are read from the
//! DOM. The screenshot is kept in `target/test-artifacts/dashboard.png`.
//! Without Chromium the test prints a notice and passes, unless
//! `FUSEFLOW_REQUIRE_CHROMIUM=1` (CI) makes that a failure.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fuseflow::serve::ServeOptions;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

use crate::serve_live::{Live, wide_ipc};

/// A pipeline that takes a few seconds: five passes over 2M rows.
const SLOW_SPEC: &str = r#"
name = "slow"
[[steps]]
name = "raw"
kind = "read"
path = "data/wide.arrow"
[[steps]]
name = "a"
kind = "derive"
input = "raw"
columns = { g = "sqrt(abs(f0)) + f1 * f2" }
[[steps]]
name = "b"
kind = "filter"
input = "a"
predicate = "g > 1"
[[steps]]
name = "c"
kind = "derive"
input = "b"
columns = { h = "log1p(abs(g)) * f3" }
[[steps]]
name = "d"
kind = "select"
input = "c"
columns = ["g", "h"]
"#;

/// Chromium's binary on the `PATH`, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The value of `expression` in the page, as JSON.
fn evaluate(tab: &Tab, expression: &str) -> Value {
    let wrapped = format!("JSON.stringify({expression})");
    let result = tab.evaluate(&wrapped, false).unwrap();
    let text = result.value.and_then(|v| v.as_str().map(String::from));
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// Wait until `expression` is true in the page.
fn wait_for(tab: &Tab, expression: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while evaluate(tab, expression) != Value::Bool(true) {
        let status = evaluate(tab, "document.querySelector('#run-status')?.textContent");
        assert!(
            Instant::now() < deadline,
            "the page never showed {what} (run status on the page: {status})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_dashboard_follows_a_triggered_run_to_its_end() {
    let Some(binary) = chromium() else {
        let required = std::env::var_os("FUSEFLOW_REQUIRE_CHROMIUM").is_some_and(|v| v == "1");
        assert!(
            !required,
            "FUSEFLOW_REQUIRE_CHROMIUM=1 but no chromium on the PATH"
        );
        eprintln!(
            "note: dashboard test skipped: no chromium on the PATH (apt-get install chromium)"
        );
        return;
    };
    let browser = Browser::new(LaunchOptions {
        path: Some(binary),
        headless: true,
        sandbox: false,
        window_size: Some((1560, 1900)),
        args: vec![OsStr::new("--disable-dev-shm-usage")],
        idle_browser_timeout: Duration::from_secs(180),
        ..LaunchOptions::default()
    })
    .unwrap();
    let tab = browser.new_tab().unwrap();

    // One run at a time, and a slow one first: the training run waits
    // behind it, so the page opens on a run that has not ended.
    let dir = tempfile::tempdir().unwrap();
    let live = Live::start(dir.path(), ServeOptions::default());
    wide_ipc(&dir.path().join("data/wide.arrow"), 2_000_000);
    assert_eq!(live.post("/pipelines", SLOW_SPEC).0, 201);
    let spec = std::fs::read_to_string("examples/train.toml").unwrap();
    assert_eq!(live.post("/pipelines", &spec).0, 201);
    let (_, slow) = live.post("/pipelines/slow/runs", "");
    let (status, queued) = live.post(
        "/pipelines/customers-train/runs",
        r#"{"params": {"l2": 10}}"#,
    );
    assert_eq!(status, 202, "{queued}");
    let run = queued["run"].as_str().unwrap().to_string();

    tab.navigate_to(&format!("{}/#/runs/{run}", live.base))
        .unwrap();
    wait_for(
        &tab,
        "['queued', 'running'].includes(document.querySelector('#run-status')?.textContent)",
        "the run waiting or running",
    );
    // Let it through, and the same page follows it to its end.
    let (status, cancelled) = live.post(
        &format!("/runs/{}/cancel", slow["run"].as_str().unwrap()),
        "",
    );
    assert!(matches!(status, 202 | 409), "{cancelled}");
    wait_for(
        &tab,
        "document.querySelector('#run-status')?.textContent === 'succeeded'",
        "the run succeeded",
    );
    let detail = live.finished(&run);
    assert_eq!(detail["status"], "succeeded", "{detail}");

    // Every step is a node of the DAG, with its state and rows.
    wait_for(
        &tab,
        "document.querySelectorAll('g.dag-node[data-status=ran]').length === 12",
        "12 steps that ran",
    );
    let nodes = evaluate(
        &tab,
        "[...document.querySelectorAll('g.dag-node')].map((n) => [n.dataset.step, \
         n.dataset.rowsIn ?? null, n.dataset.rowsOut ?? null, n.classList.contains('dropped-rows')])",
    );
    let node = |step: &str| {
        let found = nodes.as_array().unwrap().iter().find(|n| n[0] == step);
        found
            .unwrap_or_else(|| panic!("no node '{step}' in {nodes}"))
            .clone()
    };
    let steps = detail["step_runs"].as_array().unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), steps.len(), "{nodes}");
    // `filled` keeps the training side's rows: in = out, not flagged.
    let filled = node("filled");
    assert_eq!(filled[1], filled[2], "{filled}");
    assert_eq!(filled[3], false, "{filled}");
    let train_rows = (steps.iter().find(|s| s["step"] == "filled"))
        .and_then(|s| s["rows"].as_u64())
        .unwrap();
    assert_eq!(filled[2], train_rows.to_string());

    // The metrics table shows the recorded value.
    let recorded = (detail["metrics"].as_array().unwrap().iter())
        .find(|m| m["step"] == "logistic_quality" && m["name"] == "roc_auc")
        .and_then(|m| m["value"].as_f64())
        .unwrap();
    wait_for(
        &tab,
        "document.querySelector('td.metric[data-metric=\"logistic_quality.roc_auc\"]') !== null",
        "the logistic model's roc_auc",
    );
    let shown = evaluate(
        &tab,
        "document.querySelector('td.metric[data-metric=\"logistic_quality.roc_auc\"]').textContent",
    );
    let shown: f64 = shown.as_str().unwrap().parse().unwrap();
    assert!(
        (shown - recorded).abs() < 1e-3,
        "shown {shown}, recorded {recorded}"
    );

    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("dashboard.png"), png).unwrap();

    // The pipeline's metrics across runs: a table row for the run, a chart.
    tab.navigate_to(&format!(
        "{}/#/pipelines/customers-train/metrics",
        live.base
    ))
    .unwrap();
    wait_for(
        &tab,
        &format!(
            "document.querySelector('table#pipeline-metrics a[href=\"#/runs/{run}\"]') !== null \
             && document.querySelector('svg#metric-chart') !== null"
        ),
        "the run in the metrics table and a chart",
    );

    // A sweep's variants side by side: one row each, and a chart.
    let sweep = std::fs::read_to_string("examples/sweep.toml").unwrap();
    assert_eq!(live.post("/pipelines", &sweep).0, 201);
    let body = r#"{"sweep": {"params": {"l2": [0.5, 2.0]}}}"#;
    let (_, queued) = live.post("/pipelines/customers-sweep/runs", body);
    let swept = queued["run"].as_str().unwrap().to_string();
    tab.navigate_to(&format!("{}/#/runs/{swept}", live.base))
        .unwrap();
    wait_for(
        &tab,
        "document.querySelectorAll('table#variants tbody tr').length === 2 \
         && document.querySelector('#variant-chart') !== null",
        "two variants and their chart",
    );
}
