//! What keeps the server safe by default: the `Host` check (DNS
//! rebinding), the bearer token, response headers that keep browsers from
//! framing or sniffing its answers, and the data root that the files of a
//! run triggered here must lie under.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::{ApiError, ApiResult};
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;

/// The server's checks of each request.
#[derive(Debug)]
pub(crate) struct Guard {
    /// `host:port` forms a request's `Host` header may take.
    hosts: Vec<String>,
    /// The bearer token every request but the open routes must carry.
    token: Option<String>,
    /// The directory (canonical) the files of triggered runs must lie under.
    data_root: PathBuf,
}

/// Routes open without a token: health, and the dashboard's static files
/// (which hold no data; the page sends the token with every call it makes).
fn is_open(path: &str) -> bool {
    path == "/health" || path == "/" || path.starts_with("/assets/")
}

impl Guard {
    /// The checks for a server bound to `addr` (and known as `extra_hosts`
    /// too), with `token` and `data_root` (which must exist).
    pub(crate) fn new(
        addr: SocketAddr,
        extra_hosts: &[String],
        token: Option<String>,
        data_root: &Path,
    ) -> Result<Guard> {
        let port = addr.port();
        let mut names = vec![addr.ip().to_string(), "localhost".to_string()];
        if addr.ip().is_loopback() {
            names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
        }
        names.extend(extra_hosts.iter().cloned());
        names.sort();
        names.dedup();
        let hosts = (names.iter())
            .map(|n| match n.contains(':') && !n.starts_with('[') {
                true => format!("[{n}]:{port}"),
                false => format!("{n}:{port}"),
            })
            .collect();
        let data_root = data_root.canonicalize().map_err(|e| {
            Error::io(data_root, format!("the data root cannot be opened: {e}")).caused_by(e)
        })?;
        Ok(Guard {
            hosts,
            token,
            data_root,
        })
    }

    /// The data root, canonical.
    pub(crate) fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// Whether `request` may go on: its `Host` names this server, and it
    /// carries the token where one is needed.
    fn admit(&self, request: &Request) -> ApiResult<()> {
        let host = (request.headers().get(header::HOST))
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| ApiError::bad_request("the request has no Host header"))?;
        if !self.hosts.contains(&host) {
            return Err(ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "Host '{host}' is not a name of this server ({}); start it with \
                     --allow-host NAME to accept another",
                    self.hosts.join(", ")
                ),
            ));
        }
        let Some(token) = &self.token else {
            return Ok(());
        };
        if is_open(request.uri().path()) {
            return Ok(());
        }
        let given = (request.headers().get(header::AUTHORIZATION))
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        match given {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong bearer token",
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this server needs `Authorization: Bearer TOKEN` (the token `fuseflow serve` \
                 printed; the dashboard takes it as /#token=TOKEN)",
            )),
        }
    }

    /// Check that every file `pipeline` reads or writes lies under the data
    /// root, `..` and symbolic links resolved.
    ///
    /// # Errors
    /// 403 naming the step and the file.
    pub(crate) fn confine(&self, pipeline: &Pipeline) -> ApiResult<()> {
        for node in &pipeline.nodes {
            let read = node.step.source_file().map(|s| s.path);
            let files = read.into_iter().chain(node.step.written_files());
            for file in files {
                if !self.holds(&file) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        format!(
                            "step '{}' uses {}, outside the data root {}; runs started over \
                             REST may only read and write files under it (fuseflow serve \
                             --data-root)",
                            node.name,
                            file.display(),
                            self.data_root.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether `file` resolves to a path under the data root: the file
    /// itself where it exists, else its nearest existing ancestor with the
    /// rest appended (which must not climb with `..`).
    fn holds(&self, file: &Path) -> bool {
        let mut existing = file.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                return false;
            };
            rest.push(name.to_os_string());
            existing = parent.to_path_buf();
        }
        let Ok(mut resolved) = existing.canonicalize() else {
            return false;
        };
        for part in rest.iter().rev() {
            if Path::new(part)
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            {
                return false;
            }
            resolved.push(part);
        }
        resolved.starts_with(&self.data_root)
    }
}

/// Compare without an early exit, so timing tells nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: refuse what [`Guard::admit`] refuses, and set the safety
/// headers on every answer.
pub(crate) async fn check(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match guard.admit(&request) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A new random token: 32 bytes from the operating system, as hex.
///
/// # Errors
/// [`Error::Io`] when the system's random source cannot be read.
pub(crate) fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::io(
            "the system's random source",
            format!("cannot draw a token from it ({e}); give one with --token"),
        )
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
