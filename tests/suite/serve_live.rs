//! `fuseflow serve` over real loopback sockets: many clients at once, a
//! client that hangs up in the middle of a download, and a full disk.
//! (`serve` drives the routes in-process; `dashboard` opens them in a
//! browser.)

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuseflow::Workspace;
use fuseflow::serve::{ServeOptions, Server};
use serde_json::Value;

use crate::workspace_processes::BIN;

/// A server in this process on a free loopback port over a workspace in
/// `dir` (customers data under `dir/data`); stopped when dropped.
pub(crate) struct Live {
    pub(crate) base: String,
    agent: ureq::Agent,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<JoinHandle<fuseflow::Result<()>>>,
}

/// A client that reports every status as a value, not an error.
pub(crate) fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl Live {
    pub(crate) fn start(dir: &Path, options: ServeOptions) -> Live {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::copy("examples/data/customers.csv", data.join("customers.csv")).unwrap();
        let ws = Workspace::open(dir.join(".fuseflow")).unwrap();
        let options = ServeOptions {
            bind: ([127, 0, 0, 1], 0).into(),
            ..options
        };
        let server = Server::bind(ws, options).unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = std::thread::spawn(move || {
            server.run(async {
                let _ = stopped.await;
            })
        });
        Live {
            base,
            agent: client(),
            stop: Some(stop),
            serving: Some(serving),
        }
    }

    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        json(self.agent.get(format!("{}{path}", self.base)).call())
    }

    pub(crate) fn post(&self, path: &str, body: &str) -> (u16, Value) {
        json(self.agent.post(format!("{}{path}", self.base)).send(body))
    }

    /// Poll run `id` until it has ended; its detail.
    pub(crate) fn finished(&self, id: &str) -> Value {
        finished(&self.agent, &self.base, id, |_| {})
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Idle keep-alive connections would hold the graceful shutdown open.
        self.agent = client();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let serving = self.serving.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !serving.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if serving.is_finished() && !std::thread::panicking() {
            serving.join().unwrap().unwrap();
        }
    }
}

/// The status and JSON body of an answer (a string where it is not JSON).
fn json(answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut response = answer.unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Poll run `id` at `base` until it has ended, timing each status call
/// with `timed`; its detail.
fn finished(agent: &ureq::Agent, base: &str, id: &str, mut timed: impl FnMut(Duration)) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let asked = Instant::now();
        let (status, detail) = json(agent.get(format!("{base}/runs/{id}")).call());
        timed(asked.elapsed());
        assert_eq!(status, 200, "{detail}");
        if !matches!(detail["status"].as_str(), Some("queued" | "running")) {
            return detail;
        }
        assert!(Instant::now() < deadline, "run {id} did not end: {detail}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A small pipeline with one parameter, which only its `scaled` step reads.
const LOAD_SPEC: &str = r#"
name = "load"

[params.k]
type = "float"
default = 1.0

[[steps]]
name = "raw"
kind = "read"
path = "data/customers.csv"

[[steps]]
name = "scaled"
kind = "derive"
input = "raw"
columns = { income_k = "income * ${k}" }
"#;

/// A column more over `data/wide.arrow` (see [`wide_ipc`]).
const WIDE_SPEC: &str = r#"
name = "wide"

[[steps]]
name = "raw"
kind = "read"
path = "data/wide.arrow"

[[steps]]
name = "doubled"
kind = "derive"
input = "raw"
columns = { g = "f0 * 2" }
"#;

/// The value at quantile `q` of sorted `times`, in milliseconds.
fn quantile_ms(times: &[Duration], q: f64) -> f64 {
    let at = ((times.len() - 1) as f64 * q).round() as usize;
    times[at].as_secs_f64() * 1e3
}

#[test]
fn two_hundred_triggers_from_sixteen_clients_each_run_once() {
    const CLIENTS: usize = 16;
    const TRIGGERS_EACH: usize = 13; // 208 in all
    let dir = tempfile::tempdir().unwrap();
    let live = Live::start(
        dir.path(),
        ServeOptions {
            concurrency: 2,
            queue_capacity: 256,
            ..ServeOptions::default()
        },
    );
    assert_eq!(live.post("/pipelines", LOAD_SPEC).0, 201);

    let started = Instant::now();
    let latencies = Mutex::new(Vec::new());
    let triggered: Vec<(String, f64, Value)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (base, latencies) = (&live.base, &latencies);
                scope.spawn(move || {
                    let agent = client();
                    let mut mine = Vec::new();
                    for t in 0..TRIGGERS_EACH {
                        let k = ((c * TRIGGERS_EACH + t) % 4) as f64 + 0.5;
                        let body = format!(r#"{{"params": {{"k": {k}}}}}"#);
                        let (status, queued) = json(
                            agent
                                .post(format!("{base}/pipelines/load/runs"))
                                .send(&body),
                        );
                        assert_eq!(status, 202, "{queued}");
                        let id = queued["run"].as_str().unwrap().to_string();
                        let detail = finished(&agent, base, &id, |d| {
                            latencies.lock().unwrap().push(d);
                        });
                        mine.push((id, k, detail));
                    }
                    mine
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let wall = started.elapsed();

    // Every trigger is one run, none lost or doubled, each with its own
    // parameter value and output.
    assert_eq!(triggered.len(), CLIENTS * TRIGGERS_EACH);
    let mut ids: Vec<&str> = triggered.iter().map(|(id, ..)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), triggered.len(), "a run id was handed out twice");
    for (id, k, detail) in &triggered {
        assert_eq!(detail["status"], "succeeded", "{id}: {detail}");
        let params: toml::Table = toml::from_str(detail["params"].as_str().unwrap()).unwrap();
        assert_eq!(params["params"]["k"].as_float(), Some(*k), "{id}: {detail}");
    }
    // The run store holds exactly those runs, every one ended.
    let ws = Workspace::open(dir.path().join(".fuseflow")).unwrap();
    let stored = ws.runs().runs(None).unwrap();
    let mut stored_ids: Vec<String> = stored.iter().map(|r| r.id.to_string()).collect();
    stored_ids.sort_unstable();
    assert_eq!(stored_ids, ids);
    assert!(stored.iter().all(|r| r.status.is_finished()));
    // `scaled` ran once per value of k (4 values); every other trigger hit.
    let computed = (triggered.iter())
        .flat_map(|(_, _, d)| d["step_runs"].as_array().unwrap().clone())
        .filter(|s| s["step"] == "scaled" && s["cache_hit"] == false)
        .count();
    assert!(
        (4..=4 + CLIENTS).contains(&computed),
        "scaled computed {computed} times"
    );

    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort_unstable();
    eprintln!(
        "load: {} runs from {CLIENTS} clients in {:.1} s; GET /runs/ID over {} calls: \
         p50 {:.2} ms, p99 {:.2} ms",
        triggered.len(),
        wall.as_secs_f64(),
        latencies.len(),
        quantile_ms(&latencies, 0.5),
        quantile_ms(&latencies, 0.99),
    );
}

/// An Arrow IPC file of `rows` rows x 8 f64 columns at `path`.
pub(crate) fn wide_ipc(path: &Path, rows: usize) {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, RecordBatch};
    let columns: Vec<(String, ArrayRef)> = (0..8)
        .map(|c| {
            let values = (0..rows).map(|r| (r * 8 + c) as f64);
            let array: ArrayRef = Arc::new(Float64Array::from_iter_values(values));
            (format!("f{c}"), array)
        })
        .collect();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = arrow_ipc::writer::FileWriter::try_new(file, &batch.schema()).unwrap();
    for start in (0..rows).step_by(65536) {
        writer
            .write(&batch.slice(start, 65536.min(rows - start)))
            .unwrap();
    }
    writer.finish().unwrap();
}

#[test]
fn a_client_hanging_up_mid_download_leaves_the_server_serving() {
    let dir = tempfile::tempdir().unwrap();
    let live = Live::start(dir.path(), ServeOptions::default());
    // 600k rows x 9 f64 columns: 43 MB, far more than the socket buffers
    // and the chunks in flight.
    wide_ipc(&dir.path().join("data/wide.arrow"), 600_000);
    assert_eq!(live.post("/pipelines", WIDE_SPEC).0, 201);
    let (_, queued) = live.post("/pipelines/wide/runs", "");
    let run = queued["run"].as_str().unwrap().to_string();
    assert_eq!(live.finished(&run)["status"], "succeeded");
    let url = format!("{}/runs/{run}/steps/doubled/output", live.base);

    for format in ["arrow", "parquet"] {
        for _ in 0..4 {
            // Each hang-up on its own connection, dropped after 1 MB.
            let mut response = client()
                .get(format!("{url}?format={format}"))
                .call()
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let mut first = vec![0u8; 1 << 20];
            response
                .body_mut()
                .as_reader()
                .read_exact(&mut first)
                .unwrap();
        }
        assert_eq!(live.get("/health").0, 200);
    }
    // A whole download after them is the stored table.
    let mut response = client().get(&url).call().unwrap();
    let bytes = (response.body_mut().with_config())
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    let reader = arrow_ipc::reader::StreamReader::try_new(&bytes[..], None).unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 600_000);
    assert_eq!(batches[0].num_columns(), 9);
}

/// A child process killed when dropped (a failed assertion included).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fuseflow serve` in a mount namespace of its own whose workspace and
/// data root are a tmpfs of `mib` MiB at `dir/disk`; its address.
fn serve_on_small_disk(dir: &Path, mib: u32) -> Option<(Killed, String)> {
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let script = format!(
        "mount -t tmpfs -o size={mib}m tmpfs '{disk}' && mkdir '{disk}/data' && \
         cp examples/data/customers.csv '{disk}/data/' && \
         exec '{BIN}' --workspace '{disk}/.fuseflow' serve --bind 127.0.0.1:0",
        disk = disk.display()
    );
    let mut child = Killed(
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?,
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8];
    while stdout.read(&mut byte).ok()? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    let Some(base) = (line.split_whitespace())
        .find_map(|w| w.strip_prefix("http://"))
        .map(|a| format!("http://{}", a.trim_end_matches('/')))
    else {
        let mut err = String::new();
        let _ = child.0.kill();
        let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
        eprintln!("note: full-disk test skipped, no private tmpfs here: {err}");
        return None;
    };
    Some((child, base))
}

/// Write `bytes` bytes to `path`, or until the disk is full; how many
/// were written.
fn fill(path: &Path, bytes: u64) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![7u8; 64 << 10];
    let mut written = 0;
    while written < bytes {
        let n = block
            .len()
            .min(usize::try_from(bytes - written).unwrap_or(usize::MAX));
        if std::io::Write::write_all(&mut file, &block[..n]).is_err() {
            break;
        }
        written += n as u64;
    }
    written
}

/// Bytes free in directory `dir` (tools like `df` do not see a file
/// system through `/proc/PID/root`): what a probe file can take.
fn free_bytes(dir: &Path) -> u64 {
    let probe = dir.join("probe");
    let free = fill(&probe, u64::MAX);
    std::fs::remove_file(probe).unwrap();
    free
}

#[test]
fn a_full_disk_refuses_or_fails_runs_and_keeps_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let Some((child, base)) = serve_on_small_disk(dir.path(), 24) else {
        return;
    };
    // The server's disk, seen through its mount namespace.
    let disk = Path::new("/proc")
        .join(child.0.id().to_string())
        .join("root")
        .join(dir.path().strip_prefix("/").unwrap())
        .join("disk");
    let agent = client();
    let call = |method: &str, path: &str, body: &str| {
        let url = format!("{base}{path}");
        json(match method {
            "GET" => agent.get(url).call(),
            _ => agent.post(url).send(body),
        })
    };
    let run_to_end = |pipeline: &str, body: &str| {
        let (status, queued) = call("POST", &format!("/pipelines/{pipeline}/runs"), body);
        assert_eq!(status, 202, "{queued}");
        finished(&agent, &base, queued["run"].as_str().unwrap(), |_| {})
    };
    wide_ipc(&disk.join("data/wide.arrow"), 100_000); // 6.4 MB
    assert_eq!(call("POST", "/pipelines", LOAD_SPEC).0, 201);
    assert_eq!(call("POST", "/pipelines", WIDE_SPEC).0, 201);
    let first = run_to_end("load", "");
    assert_eq!(first["status"], "succeeded", "{first}");
    let stored = format!(
        "/runs/{}/steps/scaled/preview",
        first["id"].as_str().unwrap()
    );
    let (status, preview) = call("GET", &stored, "");
    assert_eq!(status, 200, "{preview}");

    // A disk with no room left: triggers are refused with 507, naming it.
    let filler = disk.join("filler");
    fill(&filler, u64::MAX);
    let (status, refused) = call("POST", "/pipelines/load/runs", "");
    assert_eq!(status, 507, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("disk is full"),
        "{refused}"
    );
    assert_eq!(call("GET", "/health", "").0, 200);
    assert_eq!(call("GET", &stored, ""), (200, preview.clone()));

    // Room for the run's record but not its 7 MB output: the run fails,
    // saying why, and leaves no partial object behind.
    std::fs::remove_file(&filler).unwrap();
    fill(&filler, free_bytes(&disk) - (2 << 20));
    let before = free_bytes(&disk);
    let failed = run_to_end("wide", "");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].to_string().contains("No space left"),
        "{failed}"
    );
    let leaked = before.saturating_sub(free_bytes(&disk));
    assert!(
        leaked < 512 << 10,
        "{leaked} bytes still taken after the failed run"
    );
    assert_eq!(call("GET", &stored, ""), (200, preview));

    // With room again, the same pipeline runs.
    std::fs::remove_file(&filler).unwrap();
    let again = run_to_end("wide", "");
    assert_eq!(again["status"], "succeeded", "{again}");
}

#[test]
fn malformed_requests_and_cross_origin_calls_are_refused_and_the_server_goes_on() {
    use std::io::Write;
    use std::net::TcpStream;

    let dir = tempfile::tempdir().unwrap();
    let live = Live::start(dir.path(), ServeOptions::default());
    let addr = live.base.trim_start_matches("http://").to_string();
    let exchange = |bytes: &[u8]| {
        let mut socket = TcpStream::connect(&addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        socket.write_all(bytes).unwrap();
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    // Not HTTP, a header without a colon, a request line of 64 KiB, and a
    // body shorter than its Content-Length, cut by the client.
    assert!(
        exchange(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
            .starts_with("HTTP/1.1 400")
    );
    assert!(
        exchange(b"GET /health HTTP/1.1\r\nHost localhost\r\n\r\n").starts_with("HTTP/1.1 400")
    );
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: {addr}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let answer = exchange(long.as_bytes());
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    let cut =
        format!("POST /pipelines HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\r\nname = ");
    let mut socket = TcpStream::connect(&addr).unwrap();
    socket.write_all(cut.as_bytes()).unwrap();
    drop(socket);

    // A browser's cross-origin preflight gets no CORS grant.
    let preflight = format!(
        "OPTIONS /pipelines HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\n\
         Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
    );
    let answer = exchange(preflight.as_bytes()).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 4"), "{answer}");
    assert!(!answer.contains("access-control-allow"), "{answer}");

    let (status, health) = live.get("/health");
    assert_eq!((status, health["status"].clone()), (200, "ok".into()));
}
