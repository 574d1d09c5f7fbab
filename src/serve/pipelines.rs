//! Routes of published pipelines: publish, list, versions, the default,
//! enabling, the plan, and triggering a run.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::api::{ApiError, ApiResult, PipelineJson, VersionJson};
use super::queue::Ticket;
use super::{AppState, blocking};
use crate::exec::RunOptions;
use crate::pipeline::params::ParamValues;
use crate::pipeline::spec;

/// The longest pipeline name accepted (it is part of URLs).
const NAME_MAX: usize = 100;

/// `POST /pipelines?default=BOOL`.
#[derive(Deserialize)]
pub(crate) struct PublishQuery {
    default: Option<bool>,
}

/// `POST /pipelines`: publish the body's spec under its `name`.
pub(crate) async fn publish(
    State(state): State<Arc<AppState>>,
    Query(query): Query<PublishQuery>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the spec is not UTF-8 text"))?;
    blocking(&state, move |state| {
        let name = spec_name(&text)?;
        // The spec is anchored in the data root: its relative paths are
        // files there.
        let anchor = state.guard.data_root().join(format!("{name}.toml"));
        spec::check(&text, &anchor)?;
        if let Ok(pipeline) = spec::parse(&text, &anchor) {
            state.guard.confine(&pipeline)?;
        }
        let runs = state.ws.runs();
        let published =
            runs.publish(&name, &text, &anchor, "rest", query.default.unwrap_or(true))?;
        let status = match published.created {
            true => StatusCode::CREATED,
            false => StatusCode::OK,
        };
        Ok((status, Json(VersionJson::new(&published.version, None))))
    })
    .await
}

/// The spec's `name`, checked to be usable in a URL.
fn spec_name(text: &str) -> ApiResult<String> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("the spec is not valid TOML: {e}")))?;
    let name = (table.get("name").and_then(toml::Value::as_str)).ok_or_else(|| {
        ApiError::bad_request("the spec has no `name = \"...\"` to publish it under")
    })?;
    let usable = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty()
        || name.len() > NAME_MAX
        || !name.chars().all(usable)
        || name.starts_with('.')
    {
        return Err(ApiError::bad_request(format!(
            "the spec's name '{name}' cannot be published: use 1 to {NAME_MAX} letters, digits, \
             '-', '_' or '.', not starting with '.'"
        )));
    }
    Ok(name.to_string())
}

/// `GET /pipelines`.
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<PipelineJson>>> {
    blocking(&state, |state| {
        Ok(Json(PipelineJson::grouped(&state.ws.runs().published()?)))
    })
    .await
}

/// `GET /pipelines/{name}`.
pub(crate) async fn one(
    State(state): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Json<PipelineJson>> {
    blocking(&state, move |state| {
        let versions = state.ws.runs().published_versions(&name)?;
        // Not empty: an unpublished name is NotFound above.
        let grouped = PipelineJson::grouped(&versions).pop();
        grouped.map(Json).ok_or_else(|| {
            crate::error::Error::Internal(format!("pipeline '{name}' listed no versions")).into()
        })
    })
    .await
}

/// `GET /pipelines/{name}/versions/{version}`: with its spec.
pub(crate) async fn version(
    State(state): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, u32)>,
) -> ApiResult<Json<VersionJson>> {
    blocking(&state, move |state| {
        let published = state.ws.runs().published_spec(&name, Some(version))?;
        Ok(Json(VersionJson::new(
            &published.version,
            Some(published.spec),
        )))
    })
    .await
}

/// `POST /pipelines/{name}/versions/{version}/{action}`: `default`,
/// `enable` or `disable`.
pub(crate) async fn change_version(
    State(state): State<Arc<AppState>>,
    UrlPath((name, version, action)): UrlPath<(String, u32, String)>,
) -> ApiResult<Json<VersionJson>> {
    blocking(&state, move |state| {
        let runs = state.ws.runs();
        let changed = match action.as_str() {
            "default" => runs.set_default_version(&name, version)?,
            "enable" => runs.set_version_enabled(&name, version, true)?,
            "disable" => runs.set_version_enabled(&name, version, false)?,
            other => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no action '{other}' on a version; use default, enable or disable"),
                ));
            }
        };
        Ok(Json(VersionJson::new(&changed, None)))
    })
    .await
}

/// `GET /pipelines/{name}/plan?version=V&format=text|dot`.
#[derive(Deserialize)]
pub(crate) struct PlanQuery {
    version: Option<u32>,
    format: Option<String>,
}

/// `GET /pipelines/{name}/plan`: the physical plan as `fuseflow explain`
/// prints it.
pub(crate) async fn plan(
    State(state): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    Query(query): Query<PlanQuery>,
) -> ApiResult<impl IntoResponse> {
    blocking(&state, move |state| {
        let published = state.ws.runs().published_spec(&name, query.version)?;
        let pipeline = spec::parse(&published.spec, &published.anchor)?;
        let options = RunOptions {
            workspace: Some(state.ws.clone()),
            device: state.device,
            ..RunOptions::default()
        };
        let plan = pipeline.plan(&options)?;
        let (text, kind) = match query.format.as_deref() {
            None | Some("text") => (plan.to_string(), "text/plain; charset=utf-8"),
            Some("dot") => (plan.to_dot(), "text/vnd.graphviz; charset=utf-8"),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "no plan format '{other}'; use text or dot"
                )));
            }
        };
        Ok(([(header::CONTENT_TYPE, kind)], text))
    })
    .await
}

/// The body of `POST /pipelines/{name}/runs`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Trigger {
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
    version: Option<u32>,
    #[serde(default)]
    rerun_all: bool,
    /// Replaces the spec's `[sweep]` table (the same shape, as JSON).
    sweep: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The answer to a trigger.
#[derive(Serialize)]
struct Queued {
    run: String,
    status: &'static str,
    pipeline: String,
    version: u32,
}

/// `POST /pipelines/{name}/runs`: check and queue a run; 202 at once.
pub(crate) async fn trigger(
    State(state): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let trigger: Trigger = match body.iter().all(u8::is_ascii_whitespace) {
        true => Trigger::default(),
        false => serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the trigger is not valid JSON: {e}")))?,
    };
    blocking(&state, move |state| {
        let published = state.ws.runs().published_spec(&name, trigger.version)?;
        let v = published.version.version;
        if !published.version.enabled {
            return Err(ApiError::conflict(format!(
                "version {v} of '{name}' is disabled; enable it (POST \
                 /pipelines/{name}/versions/{v}/enable) or name another version"
            )));
        }
        let values = param_values(&trigger.params)?;
        let text = match &trigger.sweep {
            Some(sweep) => with_sweep(&published.spec, sweep)?,
            None => published.spec,
        };
        let (pipeline, params) = spec::parse_with(&text, &published.anchor, &values)?;
        state.guard.confine(&pipeline)?;
        let ticket = Ticket {
            pipeline,
            spec: text,
            params,
            rerun_all: trigger.rerun_all,
        };
        let run = state.queue.submit(ticket)?;
        let queued = Queued {
            run: run.to_string(),
            status: "queued",
            pipeline: name,
            version: v,
        };
        Ok((StatusCode::ACCEPTED, Json(queued)))
    })
    .await
}

/// A trigger's parameters as the spec reads them: JSON values as TOML
/// (through serde; null and integers past i64 have no TOML form).
fn param_values(params: &serde_json::Map<String, serde_json::Value>) -> ApiResult<ParamValues> {
    params
        .iter()
        .try_fold(ParamValues::new(), |values, (name, value)| {
            let value = toml::Value::try_from(value).map_err(|e| {
                ApiError::bad_request(format!(
                    "parameter '{name}': {e}; give a string, number, boolean or list"
                ))
            })?;
            Ok(values.value(name, value))
        })
}

/// `spec` with its `[sweep]` table replaced by `sweep` (written at the
/// end of the text, which is what the run records).
fn with_sweep(spec: &str, sweep: &serde_json::Map<String, serde_json::Value>) -> ApiResult<String> {
    let mut doc: toml_edit::DocumentMut = spec
        .parse()
        .map_err(|e| ApiError::bad_request(format!("the published spec does not parse: {e}")))?;
    doc.remove("sweep");
    let tail = toml::to_string(&serde_json::json!({ "sweep": sweep }))
        .map_err(|e| ApiError::bad_request(format!("the sweep has no TOML form: {e}")))?;
    Ok(format!("{}\n\n{tail}", doc.to_string().trim_end()))
}

/// `fuseflow publish SPEC`: publish a spec file into `ws`'s registry,
/// anchored where the file is.
///
/// # Errors
/// As the spec's checks, and the run store's.
pub fn publish_file(
    ws: &crate::workspace::Workspace,
    path: &Path,
    make_default: bool,
) -> crate::error::Result<crate::track::Publication> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::error::Error::io_from(path, e))?;
    let anchor = path
        .canonicalize()
        .map_err(|e| crate::error::Error::io_from(path, e))?;
    spec::check(&text, &anchor)?;
    let name = spec_name(&text).map_err(|e| crate::error::Error::Spec {
        file: path.to_path_buf(),
        line: None,
        message: e.message,
    })?;
    let source = anchor.to_string_lossy().into_owned();
    ws.runs()
        .publish(&name, &text, &anchor, &source, make_default)
}
