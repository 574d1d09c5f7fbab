//! `fuseflow serve`'s routes, driven in-process through its router: publish,
//! trigger, poll, query, cancel, the OpenAPI document against the routes,
//! and the safety checks (Host, token, body size, files outside the data
//! root).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fuseflow::Workspace;
use fuseflow::serve::{ServeOptions, Server};
use serde_json::Value;
use tower::ServiceExt;

/// A served workspace in `dir`, with the customers data copied under its
/// data root.
fn server(dir: &Path, options: ServeOptions) -> Server {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy("examples/data/customers.csv", data.join("customers.csv")).unwrap();
    let ws = Workspace::open(dir.join(".fuseflow")).unwrap();
    let options = ServeOptions {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..options
    };
    Server::bind(ws, options).unwrap()
}

/// Send one request; the status and the body (JSON where it parses).
fn send(
    router: &Router,
    method: &str,
    uri: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request.body(Body::from(body.to_string())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    })
}

/// The router of `server`, its Host header rewritten to the bound port.
fn routes(server: &Server) -> (Router, String) {
    let port = server.local_addr().unwrap().port();
    (server.router(), format!("localhost:{port}"))
}

fn call(router: &Router, host: &str, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    send(router, method, uri, body, &[("host", host)])
}

fn prep_spec() -> String {
    std::fs::read_to_string("examples/prep.toml")
        .unwrap()
        .replace(
            "../target/customers-prepared.parquet",
            "data/prepared.parquet",
        )
}

/// Poll the run until it has ended; its detail.
fn finished(router: &Router, host: &str, run: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, detail) = call(router, host, "GET", &format!("/runs/{run}"), "");
        assert_eq!(status, StatusCode::OK, "{detail}");
        let s = detail["status"].as_str().unwrap().to_string();
        if s != "queued" && s != "running" {
            return detail;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} did not finish: {detail}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_published_pipeline_runs_over_rest_as_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), ServeOptions::default());
    let (router, host) = routes(&server);
    let (status, version) = call(&router, &host, "POST", "/pipelines", &prep_spec());
    assert_eq!(status, StatusCode::CREATED, "{version}");
    assert_eq!(version["version"], 1);
    assert_eq!(version["is_default"], true);
    // The same spec again is the same version.
    let (status, again) = call(&router, &host, "POST", "/pipelines", &prep_spec());
    assert_eq!(
        (status, again["version"].clone()),
        (StatusCode::OK, 1.into())
    );

    let (status, queued) = call(&router, &host, "POST", "/pipelines/customers-prep/runs", "");
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let run = queued["run"].as_str().unwrap().to_string();
    let detail = finished(&router, &host, &run);
    assert_eq!(detail["status"], "succeeded", "{detail}");
    let steps = detail["step_runs"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["step"] == "scaled"), "{detail}");

    // The same store as the CLI's.
    let ws = Workspace::open(dir.path().join(".fuseflow")).unwrap();
    assert_eq!(ws.runs().runs(None).unwrap()[0].id.as_str(), run);

    // A second run reuses every step, and says why for one.
    let (_, second) = call(
        &router,
        &host,
        "POST",
        "/pipelines/customers-prep/runs",
        "{}",
    );
    let second = finished(&router, &host, second["run"].as_str().unwrap());
    assert!(
        second["step_runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["cache_hit"] == true),
        "{second}"
    );
    let id = second["id"].as_str().unwrap();
    let (status, why) = call(
        &router,
        &host,
        "GET",
        &format!("/runs/{id}/steps/scaled/why"),
        "",
    );
    assert_eq!(status, StatusCode::OK, "{why}");
    assert_eq!(why["reused_from"], run.as_str());

    let (status, page) = call(
        &router,
        &host,
        "GET",
        "/runs?pipeline=customers-prep&status=succeeded&limit=1",
        "",
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            page["total"].clone(),
            page["runs"].as_array().unwrap().len()
        ),
        (2.into(), 1)
    );

    let (status, graph) = call(&router, &host, "GET", &format!("/runs/{run}/graph"), "");
    assert_eq!(status, StatusCode::OK);
    let scaled = graph["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "scaled")
        .unwrap();
    assert!(
        scaled["inputs"]
            .as_array()
            .unwrap()
            .contains(&"filled".into()),
        "{graph}"
    );

    let (status, preview) = call(
        &router,
        &host,
        "GET",
        &format!("/runs/{run}/steps/scaled/preview?rows=3"),
        "",
    );
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["rows"].as_array().unwrap().len(), 3);
    let (status, plan) = call(
        &router,
        &host,
        "GET",
        "/pipelines/customers-prep/plan?format=dot",
        "",
    );
    assert_eq!(status, StatusCode::OK);
    assert!(plan.as_str().unwrap().contains("digraph"), "{plan}");
}

#[test]
fn an_output_downloads_as_an_arrow_stream_equal_to_the_stored_table() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), ServeOptions::default());
    let (router, host) = routes(&server);
    call(&router, &host, "POST", "/pipelines", &prep_spec());
    let (_, queued) = call(&router, &host, "POST", "/pipelines/customers-prep/runs", "");
    let run = queued["run"].as_str().unwrap().to_string();
    finished(&router, &host, &run);
    let request = Request::builder()
        .uri(format!("/runs/{run}/steps/raw/output?format=arrow"))
        .header("host", &host)
        .body(Body::empty())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bytes = runtime.block_on(async {
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .unwrap()
    });
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    let ws = Workspace::open(dir.path().join(".fuseflow")).unwrap();
    let stored = fuseflow::exec::fetch_output(&ws, &run, "raw", None).unwrap();
    assert_eq!(rows, stored.num_rows());
}

#[test]
fn bad_requests_get_json_errors_naming_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), ServeOptions::default());
    let (router, host) = routes(&server);
    let cases: &[(&str, &str, &str, StatusCode, &str)] = &[
        (
            "POST",
            "/pipelines",
            "name = \"x\"\n[[steps]\n",
            StatusCode::BAD_REQUEST,
            "TOML",
        ),
        (
            "POST",
            "/pipelines/nothing/runs",
            "",
            StatusCode::NOT_FOUND,
            "nothing",
        ),
        (
            "GET",
            "/runs/nosuchrun",
            "",
            StatusCode::NOT_FOUND,
            "nosuchrun",
        ),
        (
            "GET",
            "/runs?status=sleeping",
            "",
            StatusCode::BAD_REQUEST,
            "sleeping",
        ),
        (
            "GET",
            "/no/such/route",
            "",
            StatusCode::NOT_FOUND,
            "no route",
        ),
    ];
    for (method, uri, body, want, names) in cases {
        let (status, answer) = call(&router, &host, method, uri, body);
        assert_eq!(status, *want, "{method} {uri}: {answer}");
        let message = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {uri}: {answer}"));
        assert!(message.contains(names), "{method} {uri}: {message}");
    }
    // A trigger with a wrong parameter names it; a malformed body is 400.
    call(&router, &host, "POST", "/pipelines", &prep_spec());
    let (status, answer) = call(
        &router,
        &host,
        "POST",
        "/pipelines/customers-prep/runs",
        "{\"params\": {\"nope\": 1}}",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("nope"),
        "{answer}"
    );
    let (status, _) = call(
        &router,
        &host,
        "POST",
        "/pipelines/customers-prep/runs",
        "{oops",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A disabled version is refused.
    call(
        &router,
        &host,
        "POST",
        "/pipelines/customers-prep/versions/1/disable",
        "",
    );
    let (status, answer) = call(&router, &host, "POST", "/pipelines/customers-prep/runs", "");
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
}

#[test]
fn files_outside_the_data_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), ServeOptions::default());
    let (router, host) = routes(&server);
    for path in [
        "/etc/hostname",
        "../../etc/hostname",
        "data/../../outside.csv",
    ] {
        let spec = prep_spec().replace("data/customers.csv", path);
        let (status, answer) = call(&router, &host, "POST", "/pipelines", &spec);
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::BAD_REQUEST,
            "{path}: {status} {answer}"
        );
    }
    // A symbolic link inside the root that leads out of it.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("data/link.csv")).unwrap();
        let spec = prep_spec().replace("data/customers.csv", "data/link.csv");
        let (status, answer) = call(&router, &host, "POST", "/pipelines", &spec);
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("outside the data root"),
            "{answer}"
        );
    }
}

#[test]
fn the_host_header_and_the_token_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServeOptions {
        token: Some("s3cret".into()),
        max_body: 1000,
        ..ServeOptions::default()
    };
    let server = server(dir.path(), options);
    let (router, host) = routes(&server);
    let (status, _) = send(&router, "GET", "/runs", "", &[("host", "evil.example:80")]);
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    let (status, answer) = call(&router, &host, "GET", "/runs", "");
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, _) = send(
        &router,
        "GET",
        "/runs",
        "",
        &[("host", &host), ("authorization", "Bearer wrong")],
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(
        &router,
        "GET",
        "/runs",
        "",
        &[("host", &host), ("authorization", "Bearer s3cret")],
    );
    assert_eq!(status, StatusCode::OK);
    // Health and the dashboard's files are open; bodies are limited.
    assert_eq!(call(&router, &host, "GET", "/health", "").0, StatusCode::OK);
    assert_eq!(call(&router, &host, "GET", "/", "").0, StatusCode::OK);
    let big = "x".repeat(5000);
    let (status, _) = send(
        &router,
        "POST",
        "/pipelines",
        &big,
        &[("host", &host), ("authorization", "Bearer s3cret")],
    );
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn the_openapi_document_names_exactly_the_routes_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), ServeOptions::default());
    let (router, host) = routes(&server);
    let (status, document) = call(&router, &host, "GET", "/openapi.json", "");
    assert_eq!(status, StatusCode::OK);
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{paths:?}");
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let uri = path
                .replace("{name}", "p")
                .replace("{version}", "1")
                .replace("{action}", "default")
                .replace("{run}", "r")
                .replace("{step}", "s");
            let (status, answer) = call(&router, &host, &method.to_uppercase(), &uri, "");
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let unrouted = answer["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("no route"));
            assert!(!unrouted, "{method} {path} is documented but not routed");
        }
    }
}

#[test]
fn a_queued_run_is_cancelled_and_recorded_so() {
    let dir = tempfile::tempdir().unwrap();
    // One worker, two runs: the second waits in the queue while the first
    // runs, and is cancelled there.
    let server = server(dir.path(), ServeOptions::default());
    let (router, host) = routes(&server);
    call(&router, &host, "POST", "/pipelines", &prep_spec());
    let (_, first) = call(&router, &host, "POST", "/pipelines/customers-prep/runs", "");
    let (_, second) = call(&router, &host, "POST", "/pipelines/customers-prep/runs", "");
    let second = second["run"].as_str().unwrap().to_string();
    let (status, answer) = call(
        &router,
        &host,
        "POST",
        &format!("/runs/{second}/cancel"),
        "",
    );
    let detail = finished(&router, &host, &second);
    finished(&router, &host, first["run"].as_str().unwrap());
    // Cancelled while queued: it ends at once, as cancelled. Taken by the
    // worker meanwhile, it stops before its next step (or had finished).
    match (status, answer["status"].as_str()) {
        (StatusCode::ACCEPTED, Some("cancelled")) => {
            assert_eq!(detail["status"], "cancelled", "{detail}")
        }
        (StatusCode::ACCEPTED, Some("running")) | (StatusCode::CONFLICT, _) => {
            let s = detail["status"].as_str().unwrap();
            assert!(s == "cancelled" || s == "succeeded", "{detail}")
        }
        other => panic!("cancel answered {other:?}: {answer}"),
    }
    let (status, _) = call(
        &router,
        &host,
        "POST",
        &format!("/runs/{second}/cancel"),
        "",
    );
    assert_eq!(status, StatusCode::CONFLICT);
}

#[test]
fn versions_are_listed_one_is_the_default_and_a_disabled_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), ServeOptions::default());
    let (router, host) = routes(&server);
    let get = |uri: &str| call(&router, &host, "GET", uri, "");
    let post = |uri: &str, body: &str| call(&router, &host, "POST", uri, body);
    assert_eq!(post("/pipelines", &prep_spec()).0, StatusCode::CREATED);
    let changed = prep_spec().replace("seed = 7", "seed = 8");
    let (status, second) = post("/pipelines?default=false", &changed);
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(
        (second["version"].clone(), second["is_default"].clone()),
        (2.into(), false.into())
    );

    let (status, all) = get("/pipelines");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let (_, one) = get("/pipelines/customers-prep");
    assert_eq!(one, all[0]);
    assert_eq!(one["default_version"], 1, "{one}");
    assert_eq!(one["versions"].as_array().unwrap().len(), 2, "{one}");
    let (_, v2) = get("/pipelines/customers-prep/versions/2");
    assert!(v2["spec"].as_str().unwrap().contains("seed = 8"), "{v2}");
    assert_eq!(get("/pipelines/nothing").0, StatusCode::NOT_FOUND);
    assert_eq!(
        get("/pipelines/customers-prep/versions/9").0,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        post("/pipelines/customers-prep/versions/2/default", "").0,
        StatusCode::OK
    );
    assert_eq!(get("/pipelines/customers-prep").1["default_version"], 2);
    // A trigger without a version runs the default.
    let (_, queued) = post("/pipelines/customers-prep/runs", "");
    assert_eq!(queued["version"], 2, "{queued}");
    finished(&router, &host, queued["run"].as_str().unwrap());

    assert_eq!(
        post("/pipelines/customers-prep/versions/2/disable", "").0,
        StatusCode::OK
    );
    let (status, refused) = post("/pipelines/customers-prep/runs", "");
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(
        post("/pipelines/customers-prep/versions/2/enable", "").0,
        StatusCode::OK
    );
    let (status, queued) = post("/pipelines/customers-prep/runs", "");
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    finished(&router, &host, queued["run"].as_str().unwrap());
    let (status, bad) = post("/pipelines/customers-prep/versions/2/promote", "");
    assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
}

#[test]
fn a_sweep_given_with_a_trigger_runs_its_variants_and_compares_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), ServeOptions::default());
    let (router, host) = routes(&server);
    let spec = std::fs::read_to_string("examples/sweep.toml").unwrap();
    let (status, published) = call(&router, &host, "POST", "/pipelines", &spec);
    assert_eq!(status, StatusCode::CREATED, "{published}");

    let sweep = r#"{"sweep": {"params": {"l2": [0.5, 2.0]}}}"#;
    let (status, queued) = call(
        &router,
        &host,
        "POST",
        "/pipelines/customers-sweep/runs",
        sweep,
    );
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let run = queued["run"].as_str().unwrap().to_string();
    let detail = finished(&router, &host, &run);
    assert_eq!(detail["status"], "succeeded", "{detail}");

    let (status, compared) = call(&router, &host, "GET", &format!("/runs/{run}/variants"), "");
    assert_eq!(status, StatusCode::OK, "{compared}");
    let mut names: Vec<&str> = (compared["variants"].as_array().unwrap().iter())
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["l2=0.5", "l2=2.0"], "{compared}");
    let metrics = compared["metrics"].as_array().unwrap();
    assert!(metrics.contains(&"roc_auc".into()), "{compared}");

    let (status, across) = call(
        &router,
        &host,
        "GET",
        "/metrics?pipeline=customers-sweep",
        "",
    );
    assert_eq!(status, StatusCode::OK, "{across}");
    assert_eq!(across["runs"][0]["run"], run.as_str(), "{across}");
    assert!(
        !across["runs"][0]["metrics"].as_array().unwrap().is_empty(),
        "{across}"
    );

    // A sweep over a parameter the spec does not declare names it.
    let bad = r#"{"sweep": {"params": {"nope": [1, 2]}}}"#;
    let (status, refused) = call(
        &router,
        &host,
        "POST",
        "/pipelines/customers-sweep/runs",
        bad,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("nope"),
        "{refused}"
    );
}
