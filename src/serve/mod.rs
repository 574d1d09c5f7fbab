//! `fuseflow serve`: one workspace over HTTP. Pipelines are published with
//! numbered versions, runs are triggered over REST and go through a bounded
//! queue to the engine, the run history is queried as JSON, outputs are
//! downloaded as Arrow or Parquet, and a dashboard is served at `/`
//! (`docs/rest-api.md` documents every route; `/openapi.json` too).
//!
//! The server is axum on a small tokio runtime. Handlers hand every store
//! query and every run to blocking threads, so runs never hold the async
//! threads; runs go to the run queue's workers (`queue.rs`), which call the engine as the
//! command line does (same store, same cache: a run triggered here is listed
//! by `fuseflow runs`).
//!
//! Safe by default (`guard.rs`): loopback only unless a bearer token is set,
//! the `Host` header checked, no CORS, bodies limited, and the files a
//! triggered run reads or writes confined to a data root.

mod api;
mod guard;
mod openapi;
mod outputs;
mod pipelines;
mod queue;
mod runs;

pub use pipelines::publish_file;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};

use self::api::{ApiError, ApiResult};
use self::guard::Guard;
use self::openapi::{In, RouteDoc};
use self::queue::RunQueue;
use crate::backend::DeviceChoice;
use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// The file in the workspace that holds a generated token.
pub const TOKEN_FILE: &str = "serve-token";

/// How `fuseflow serve` serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The address to listen on (default `127.0.0.1:7878`; port 0 picks a
    /// free one).
    pub bind: SocketAddr,
    /// The bearer token requests must carry. `None` on a loopback address
    /// needs none; on any other address one is generated and stored in the
    /// workspace ([`TOKEN_FILE`]).
    pub token: Option<String>,
    /// Further names the `Host` header may give (the bound address and
    /// `localhost` always may).
    pub allowed_hosts: Vec<String>,
    /// The directory the files of triggered runs must lie under, and where
    /// the relative paths of specs published over REST point (default: the
    /// directory holding the workspace).
    pub data_root: Option<PathBuf>,
    /// Runs at once.
    pub concurrency: usize,
    /// Runs waiting, at most; a trigger beyond that is refused with 503.
    pub queue_capacity: usize,
    /// The largest request body accepted, in bytes (a spec is a body).
    pub max_body: usize,
    /// The device choice of triggered runs, as `run --device`.
    pub device: DeviceChoice,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 7878)),
            token: None,
            allowed_hosts: Vec::new(),
            data_root: None,
            concurrency: 1,
            queue_capacity: 64,
            max_body: 1 << 20,
            device: DeviceChoice::Auto,
        }
    }
}

/// What every handler reads.
pub(crate) struct AppState {
    pub(crate) ws: Arc<Workspace>,
    pub(crate) queue: RunQueue,
    pub(crate) guard: Arc<Guard>,
    pub(crate) device: DeviceChoice,
}

/// Run `f` on a blocking thread (store queries, parsing, planning).
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&AppState) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the request failed: {e}"),
            )
        })?
}

/// A server bound to its address, ready to serve.
pub struct Server {
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    token: Option<String>,
    max_body: usize,
}

impl Server {
    /// Bind `options.bind` over `ws`, start the run queue's workers.
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound, the data root does
    /// not exist, or a generated token cannot be stored.
    pub fn bind(ws: Workspace, options: ServeOptions) -> Result<Server> {
        let listener = std::net::TcpListener::bind(options.bind).map_err(|e| {
            Error::io(
                format!("{}", options.bind),
                format!("cannot listen there: {e}; pick another address with --bind"),
            )
            .caused_by(e)
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io_from("socket", e))?;
        let token = match (&options.token, addr.ip().is_loopback()) {
            (Some(token), _) => Some(token.clone()),
            (None, true) => None,
            (None, false) => Some(stored_token(&ws)?),
        };
        let data_root = match &options.data_root {
            Some(root) => root.clone(),
            None => ws
                .root()
                .canonicalize()
                .ok()
                .and_then(|r| r.parent().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        let guard = Guard::new(addr, &options.allowed_hosts, token.clone(), &data_root)?;
        let ws = Arc::new(ws);
        let queue = RunQueue::start(
            ws.clone(),
            options.device,
            options.concurrency,
            options.queue_capacity,
        )?;
        let state = Arc::new(AppState {
            ws,
            queue,
            guard: Arc::new(guard),
            device: options.device,
        });
        Ok(Server {
            state,
            listener,
            token,
            max_body: options.max_body,
        })
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::io_from("socket", e))
    }

    /// The bearer token requests need, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The router: every route, the guard and the body limit (to serve
    /// in-process, as the tests do, or inside another axum application).
    pub fn router(&self) -> Router {
        let (mut docs, handlers): (Vec<RouteDoc>, Vec<_>) = routes().into_iter().unzip();
        docs.push(RouteDoc {
            method: "get",
            path: "/openapi.json",
            summary: "this document",
            params: &[],
            body: None,
            ok: (200, JSON),
        });
        let document = Arc::new(openapi::document(&docs));
        let mut router: Router<Arc<AppState>> = Router::new();
        let mut by_path: Vec<(&'static str, MethodRouter<Arc<AppState>>)> = Vec::new();
        for (doc, handler) in docs.iter().zip(handlers) {
            match by_path.iter_mut().find(|(p, _)| *p == doc.path) {
                Some((_, existing)) => *existing = std::mem::take(existing).merge(handler),
                None => by_path.push((doc.path, handler)),
            }
        }
        for (path, handler) in by_path {
            router = router.route(path, handler);
        }
        let openapi = get(move || {
            let document = document.clone();
            async move { axum::Json((*document).clone()) }
        });
        router
            .route("/openapi.json", openapi)
            .fallback(no_route)
            .layer(axum::middleware::from_fn_with_state(
                self.state.guard.clone(),
                guard::check,
            ))
            .layer(DefaultBodyLimit::max(self.max_body))
            .with_state(self.state.clone())
    }

    /// Serve until `shutdown` completes, then cancel the queued and running
    /// runs (running ones stop before their next step) and wait for them.
    ///
    /// # Errors
    /// [`Error::Io`] when the runtime cannot start or the socket fails.
    pub fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fuseflow-serve")
            .enable_all()
            .build()
            .map_err(|e| Error::io_from("tokio runtime", e))?;
        let router = self.router();
        let served = runtime.block_on(async move {
            self.listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(self.listener)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        });
        self.state.queue.shutdown();
        served.map_err(|e| Error::io_from("socket", e))
    }
}

/// The token stored in the workspace, generated the first time.
fn stored_token(ws: &Workspace) -> Result<String> {
    let path = ws.root().join(TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim();
        if !token.is_empty() {
            return Ok(token.to_string());
        }
    }
    let token = guard::new_token()?;
    #[cfg(unix)]
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
    };
    #[cfg(not(unix))]
    let file = std::fs::File::create(&path);
    use std::io::Write;
    file.and_then(|mut f| f.write_all(token.as_bytes()))
        .map_err(|e| Error::io_from(&path, e))?;
    Ok(token)
}

/// An answer for a path no route serves.
async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {}; /openapi.json lists the routes", uri.path()),
    )
}

/// The dashboard's files.
fn asset(kind: &'static str, body: &'static str) -> MethodRouter<Arc<AppState>> {
    get(move || async move { ([(header::CONTENT_TYPE, kind)], body).into_response() })
}

const RUN: (&str, In, &str) = ("run", In::Path, "a run id, a unique prefix, or latest");
const STEP: (&str, In, &str) = ("step", In::Path, "a step of the run");
const NAME: (&str, In, &str) = ("name", In::Path, "a published pipeline");
const VERSION: (&str, In, &str) = ("version", In::Path, "a version number");
const JSON: &str = "application/json";

/// Every route: its documentation and its handler.
fn routes() -> Vec<(RouteDoc, MethodRouter<Arc<AppState>>)> {
    let doc = |method, path, summary, params, body, ok| RouteDoc {
        method,
        path,
        summary,
        params,
        body,
        ok,
    };
    vec![
        (
            doc(
                "get",
                "/health",
                "the server is up (no token needed)",
                &[],
                None,
                (200, JSON),
            ),
            get(|| async {
                axum::Json(
                    serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
                )
            }),
        ),
        (
            doc("get", "/", "the dashboard", &[], None, (200, "text/html")),
            asset(
                "text/html; charset=utf-8",
                include_str!("dashboard/index.html"),
            ),
        ),
        (
            doc(
                "get",
                "/assets/app.js",
                "the dashboard's script",
                &[],
                None,
                (200, "text/javascript"),
            ),
            asset(
                "text/javascript; charset=utf-8",
                include_str!("dashboard/app.js"),
            ),
        ),
        (
            doc(
                "get",
                "/assets/style.css",
                "the dashboard's styles",
                &[],
                None,
                (200, "text/css"),
            ),
            asset(
                "text/css; charset=utf-8",
                include_str!("dashboard/style.css"),
            ),
        ),
        (
            doc(
                "post",
                "/pipelines",
                "publish a spec (TOML body) under its name",
                &[("default", In::Query, "make the version the default (true)")],
                Some("application/toml"),
                (201, JSON),
            ),
            post(pipelines::publish),
        ),
        (
            doc(
                "get",
                "/pipelines",
                "every published pipeline with its versions",
                &[],
                None,
                (200, JSON),
            ),
            get(pipelines::list),
        ),
        (
            doc(
                "get",
                "/pipelines/{name}",
                "one published pipeline",
                &[NAME],
                None,
                (200, JSON),
            ),
            get(pipelines::one),
        ),
        (
            doc(
                "get",
                "/pipelines/{name}/versions/{version}",
                "one version with its spec",
                &[NAME, VERSION],
                None,
                (200, JSON),
            ),
            get(pipelines::version),
        ),
        (
            doc(
                "post",
                "/pipelines/{name}/versions/{version}/{action}",
                "make a version the default, or enable or disable it",
                &[
                    NAME,
                    VERSION,
                    ("action", In::Path, "default, enable or disable"),
                ],
                None,
                (200, JSON),
            ),
            post(pipelines::change_version),
        ),
        (
            doc(
                "get",
                "/pipelines/{name}/plan",
                "the physical plan of a version",
                &[
                    NAME,
                    ("version", In::Query, "a version (default: the default)"),
                    ("format", In::Query, "text or dot"),
                ],
                None,
                (200, "text/plain"),
            ),
            get(pipelines::plan),
        ),
        (
            doc(
                "post",
                "/pipelines/{name}/runs",
                "trigger a run: {params, version, rerun_all}; 202 with its id",
                &[NAME],
                Some(JSON),
                (202, JSON),
            ),
            post(pipelines::trigger),
        ),
        (
            doc(
                "get",
                "/runs",
                "runs newest first",
                &[
                    ("pipeline", In::Query, "only this pipeline's"),
                    ("status", In::Query, "only runs with this status"),
                    ("since", In::Query, "begun at or after (Unix ms)"),
                    ("until", In::Query, "begun before (Unix ms)"),
                    ("limit", In::Query, "page size (50, at most 500)"),
                    ("offset", In::Query, "runs skipped"),
                ],
                None,
                (200, JSON),
            ),
            get(runs::list),
        ),
        (
            doc(
                "get",
                "/runs/{run}",
                "one run: steps, metrics, variants",
                &[RUN],
                None,
                (200, JSON),
            ),
            get(runs::one),
        ),
        (
            doc(
                "post",
                "/runs/{run}/cancel",
                "cancel a queued or running run",
                &[RUN],
                None,
                (202, JSON),
            ),
            post(runs::cancel),
        ),
        (
            doc(
                "get",
                "/runs/{run}/graph",
                "the run's steps and their inputs",
                &[RUN],
                None,
                (200, JSON),
            ),
            get(runs::graph),
        ),
        (
            doc(
                "get",
                "/runs/{run}/variants",
                "a sweep's variants compared",
                &[RUN],
                None,
                (200, JSON),
            ),
            get(runs::variants),
        ),
        (
            doc(
                "get",
                "/runs/{run}/steps/{step}/why",
                "why a step missed the cache",
                &[RUN, STEP],
                None,
                (200, JSON),
            ),
            get(runs::why),
        ),
        (
            doc(
                "get",
                "/runs/{run}/steps/{step}/output",
                "a step's output, streamed",
                &[
                    RUN,
                    STEP,
                    (
                        "port",
                        In::Query,
                        "the output port (needed when there are several)",
                    ),
                    ("format", In::Query, "arrow (an IPC stream) or parquet"),
                ],
                None,
                (200, "application/vnd.apache.arrow.stream"),
            ),
            get(outputs::download),
        ),
        (
            doc(
                "get",
                "/runs/{run}/steps/{step}/preview",
                "the first rows of a step's output",
                &[
                    RUN,
                    STEP,
                    ("port", In::Query, "the output port"),
                    ("rows", In::Query, "rows (20, at most 1000)"),
                ],
                None,
                (200, JSON),
            ),
            get(outputs::preview),
        ),
        (
            doc(
                "get",
                "/metrics",
                "the metrics of a pipeline's latest runs",
                &[
                    ("pipeline", In::Query, "the pipeline"),
                    ("limit", In::Query, "runs (50)"),
                ],
                None,
                (200, JSON),
            ),
            get(runs::metrics),
        ),
    ]
}
