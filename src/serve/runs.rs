//! Routes of the run history: list, one run, cancel, its graph, why a step
//! missed the cache, a sweep's variants, and metrics across runs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::api::{ApiError, ApiResult, RunDetailJson, RunJson, RunMetricsJson, VariantsJson};
use super::{AppState, blocking};
use crate::exec::recorded_pipeline;
use crate::track::{RunFilter, RunStatus, SweepResults};

/// The most runs a page holds.
const PAGE_MAX: usize = 500;

/// `GET /runs?pipeline=P&status=S&since=MS&until=MS&limit=N&offset=N`.
#[derive(Deserialize)]
pub(crate) struct ListQuery {
    pipeline: Option<String>,
    status: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Serialize)]
struct Page {
    runs: Vec<RunJson>,
    total: usize,
    limit: usize,
    offset: usize,
}

/// `GET /runs`: a page of runs, newest first.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "no run status '{s}'; use queued, running, succeeded, failed, cancelled or \
                 interrupted"
            ))
        })?),
    };
    let at = |ms: Option<u64>| ms.map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
    let filter = RunFilter {
        pipeline: query.pipeline.filter(|p| !p.is_empty()),
        status,
        since: at(query.since),
        until: at(query.until),
        limit: query.limit.unwrap_or(50).min(PAGE_MAX),
        offset: query.offset.unwrap_or(0),
    };
    blocking(&state, move |state| {
        let (runs, total) = state.ws.runs().runs_page(&filter)?;
        Ok(Json(Page {
            runs: runs.iter().map(RunJson::from).collect(),
            total,
            limit: filter.limit,
            offset: filter.offset,
        }))
    })
    .await
}

/// `GET /runs/{run}`: the run with its steps, metrics and variants.
pub(crate) async fn one(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> ApiResult<Json<RunDetailJson>> {
    blocking(&state, move |state| {
        let runs = state.ws.runs();
        let detail = runs.run(&run)?;
        let variants = runs.variants(&detail.summary.id)?;
        Ok(Json(RunDetailJson::new(&detail, &variants)))
    })
    .await
}

/// `POST /runs/{run}/cancel`.
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> ApiResult<impl IntoResponse> {
    blocking(&state, move |state| {
        let summary = state.queue.cancel(&run)?;
        Ok((StatusCode::ACCEPTED, Json(RunJson::from(&summary))))
    })
    .await
}

#[derive(Serialize)]
struct GraphStep {
    step: String,
    kind: String,
    inputs: Vec<String>,
    bindings: Vec<(String, String)>,
}

#[derive(Serialize)]
pub(crate) struct Graph {
    steps: Vec<GraphStep>,
}

/// `GET /runs/{run}/graph`: the steps of the run's pipeline (a sweep's
/// compiled steps, as its step runs name them) and what each reads.
pub(crate) async fn graph(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> ApiResult<Json<Graph>> {
    blocking(&state, move |state| {
        let id = state.ws.runs().resolve(&run)?;
        let pipeline = recorded_pipeline(&state.ws, &id)?.map_err(|e| {
            ApiError::conflict(format!(
                "run {id} was not started from a spec file, so its graph is not recorded ({e})"
            ))
        })?;
        let steps = (pipeline.nodes.iter())
            .map(|node| {
                let mut inputs: Vec<String> = (node.bindings.iter())
                    .map(|(_, r)| r.split_once('.').map_or(r.as_str(), |(s, _)| s).to_string())
                    .collect();
                inputs.dedup();
                GraphStep {
                    step: node.name.clone(),
                    kind: node.step.kind().to_string(),
                    inputs,
                    bindings: node.bindings.clone(),
                }
            })
            .collect();
        Ok(Json(Graph { steps }))
    })
    .await
}

#[derive(Serialize)]
struct Difference {
    field: String,
    before: String,
    now: String,
}

#[derive(Serialize)]
pub(crate) struct WhyJson {
    step: String,
    cache_hit: bool,
    reused_from: Option<String>,
    earlier_run: Option<String>,
    differences: Vec<Difference>,
    text: String,
}

/// `GET /runs/{run}/steps/{step}/why`.
pub(crate) async fn why(
    State(state): State<Arc<AppState>>,
    UrlPath((run, step)): UrlPath<(String, String)>,
) -> ApiResult<Json<WhyJson>> {
    blocking(&state, move |state| {
        let why = state.ws.why(&run, &step)?;
        Ok(Json(WhyJson {
            step: why.step.clone(),
            cache_hit: why.reused_from.is_some(),
            reused_from: why.reused_from.as_ref().map(ToString::to_string),
            earlier_run: why.earlier_run.as_ref().map(ToString::to_string),
            differences: (why.changes.iter())
                .map(|c| Difference {
                    field: c.field.clone(),
                    before: c.before.clone(),
                    now: c.after.clone(),
                })
                .collect(),
            text: why.to_string(),
        }))
    })
    .await
}

/// `GET /runs/{run}/variants`: a sweep's variants compared (none for a run
/// without a sweep).
pub(crate) async fn variants(
    State(state): State<Arc<AppState>>,
    UrlPath(run): UrlPath<String>,
) -> ApiResult<Json<VariantsJson>> {
    blocking(&state, move |state| {
        let runs = state.ws.runs();
        let detail = runs.run(&run)?;
        let variants = runs.variants(&detail.summary.id)?;
        if variants.is_empty() {
            return Ok(Json(VariantsJson::none()));
        }
        Ok(Json(VariantsJson::from(&SweepResults::of(
            &detail, variants,
        )?)))
    })
    .await
}

/// `GET /metrics?pipeline=P&limit=N`.
#[derive(Deserialize)]
pub(crate) struct MetricsQuery {
    pipeline: String,
    limit: Option<usize>,
}

#[derive(Serialize)]
pub(crate) struct Metrics {
    runs: Vec<RunMetricsJson>,
}

/// `GET /metrics`: the metrics of a pipeline's latest runs, newest first.
pub(crate) async fn metrics(
    State(state): State<Arc<AppState>>,
    Query(query): Query<MetricsQuery>,
) -> ApiResult<Json<Metrics>> {
    blocking(&state, move |state| {
        let runs = state.ws.runs();
        let filter = RunFilter {
            pipeline: Some(query.pipeline),
            limit: query.limit.unwrap_or(50).min(PAGE_MAX),
            ..RunFilter::default()
        };
        let (page, _) = runs.runs_page(&filter)?;
        let details = (page.iter())
            .map(|r| runs.run(r.id.as_str()).map(|d| RunMetricsJson::from(&d)))
            .collect::<crate::error::Result<_>>()?;
        Ok(Json(Metrics { runs: details }))
    })
    .await
}
