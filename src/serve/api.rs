//! What the REST API answers: JSON shapes made from the run store's records
//! (documented in `docs/rest-api.md`), and errors as JSON with a status.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;
use crate::track::{
    MetricRow, PublishedVersion, RunDetail, RunSummary, StepRunRow, SweepResults, Variant,
    VariantStatus,
};

/// An error answer: a status and a message naming what is wrong, sent as
/// `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The request is malformed or asks for something impossible.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// The request conflicts with the state of what it names.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            _ if e.is_storage_full() => StatusCode::INSUFFICIENT_STORAGE,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Spec { .. }
            | Error::DuplicateStep { .. }
            | Error::MissingInput { .. }
            | Error::Cycle { .. }
            | Error::Schema { .. }
            | Error::Type { .. }
            | Error::Parse { .. }
            | Error::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            Error::Cancelled => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut chain = e.chain().into_iter();
        let mut message = chain.next().unwrap_or_default();
        for cause in chain {
            message.push_str("; caused by: ");
            message.push_str(&cause);
        }
        ApiError { status, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        let body = Body {
            error: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// What a handler answers.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Unix milliseconds.
fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A run, as listed.
#[derive(Serialize)]
pub(crate) struct RunJson {
    id: String,
    pipeline: String,
    spec_hash: String,
    status: &'static str,
    params: String,
    started_ms: i64,
    ended_ms: Option<i64>,
    duration_ms: Option<f64>,
    steps: u64,
    hits: u64,
    failed_steps: u64,
    error: Option<String>,
}

impl From<&RunSummary> for RunJson {
    fn from(r: &RunSummary) -> Self {
        RunJson {
            id: r.id.to_string(),
            pipeline: r.pipeline.clone(),
            spec_hash: r.spec_hash.clone(),
            status: r.status.as_str(),
            params: r.params.clone(),
            started_ms: ms(r.started),
            ended_ms: r.ended.map(ms),
            duration_ms: r.duration.map(millis),
            steps: r.steps,
            hits: r.hits,
            failed_steps: r.failed_steps,
            error: r.error.clone(),
        }
    }
}

/// One output of a step run.
#[derive(Serialize)]
struct OutputJson {
    port: String,
    hash: String,
    rows: Option<u64>,
    bytes: Option<u64>,
}

/// A step of a run.
#[derive(Serialize)]
struct StepRunJson {
    step: String,
    kind: String,
    device: String,
    cache_hit: bool,
    reused_from: Option<String>,
    cache_key: String,
    started_ms: i64,
    duration_ms: f64,
    recorded_ms: i64,
    rows: u64,
    bytes: u64,
    outputs: Vec<OutputJson>,
    error: Option<String>,
    notes: Option<String>,
}

impl From<&StepRunRow> for StepRunJson {
    fn from(row: &StepRunRow) -> Self {
        let r = &row.record;
        let recorded = ms(row.recorded);
        let duration = millis(r.duration);
        let outputs = (r.outputs.iter().enumerate())
            .map(|(i, (port, hash))| OutputJson {
                port: port.clone(),
                hash: hash.clone(),
                rows: r.sizes.get(i).map(|s| s.0),
                bytes: r.sizes.get(i).map(|s| s.1),
            })
            .collect();
        StepRunJson {
            step: r.step.clone(),
            kind: r.kind.clone(),
            device: r.device.clone(),
            cache_hit: r.cache_hit,
            reused_from: r.reused_from.as_ref().map(ToString::to_string),
            cache_key: r.cache_key.clone(),
            // Recorded as it finished, with its duration.
            started_ms: recorded - duration.round() as i64,
            duration_ms: duration,
            recorded_ms: recorded,
            rows: r.rows,
            bytes: r.bytes,
            outputs,
            error: r.error.clone(),
            notes: r.notes.clone(),
        }
    }
}

/// A metric; NaN is sent as `null`.
#[derive(Serialize)]
pub(crate) struct MetricJson {
    step: String,
    name: String,
    value: Option<f64>,
}

impl From<&MetricRow> for MetricJson {
    fn from(m: &MetricRow) -> Self {
        MetricJson {
            step: m.step.clone(),
            name: m.name.clone(),
            value: m.value.is_finite().then_some(m.value),
        }
    }
}

/// A sweep's variant as recorded.
#[derive(Serialize)]
struct VariantJson {
    name: String,
    assignment: Vec<(String, String)>,
    steps: Vec<(String, String)>,
}

impl From<&Variant> for VariantJson {
    fn from(v: &Variant) -> Self {
        VariantJson {
            name: v.name.clone(),
            assignment: v.assignment.clone(),
            steps: v.steps.clone(),
        }
    }
}

/// One run with everything recorded about it.
#[derive(Serialize)]
pub(crate) struct RunDetailJson {
    #[serde(flatten)]
    run: RunJson,
    step_runs: Vec<StepRunJson>,
    metrics: Vec<MetricJson>,
    variants: Vec<VariantJson>,
}

impl RunDetailJson {
    pub(crate) fn new(detail: &RunDetail, variants: &[Variant]) -> Self {
        RunDetailJson {
            run: RunJson::from(&detail.summary),
            step_runs: detail.steps.iter().map(StepRunJson::from).collect(),
            metrics: detail.metrics.iter().map(MetricJson::from).collect(),
            variants: variants.iter().map(VariantJson::from).collect(),
        }
    }
}

/// A run's metrics, for comparing runs of a pipeline.
#[derive(Serialize)]
pub(crate) struct RunMetricsJson {
    run: String,
    started_ms: i64,
    status: &'static str,
    metrics: Vec<MetricJson>,
}

impl From<&RunDetail> for RunMetricsJson {
    fn from(detail: &RunDetail) -> Self {
        RunMetricsJson {
            run: detail.summary.id.to_string(),
            started_ms: ms(detail.summary.started),
            status: detail.summary.status.as_str(),
            metrics: detail.metrics.iter().map(MetricJson::from).collect(),
        }
    }
}

/// A sweep's variants compared.
#[derive(Serialize)]
pub(crate) struct VariantsJson {
    dimensions: Vec<String>,
    metrics: Vec<String>,
    variants: Vec<VariantResultJson>,
}

#[derive(Serialize)]
struct VariantResultJson {
    name: String,
    assignment: Vec<(String, String)>,
    status: &'static str,
    error: Option<String>,
    metrics: Vec<Option<f64>>,
    time_ms: f64,
    hits: usize,
    steps: usize,
}

impl VariantsJson {
    /// No variants: a run without a sweep.
    pub(crate) fn none() -> Self {
        VariantsJson {
            dimensions: Vec::new(),
            metrics: Vec::new(),
            variants: Vec::new(),
        }
    }
}

impl From<&SweepResults> for VariantsJson {
    fn from(results: &SweepResults) -> Self {
        let variants = (results.rows.iter())
            .map(|row| {
                let (status, error) = match &row.status {
                    VariantStatus::Succeeded => ("succeeded", None),
                    VariantStatus::Failed { step, error } => {
                        ("failed", Some(format!("step '{step}': {error}")))
                    }
                    VariantStatus::Incomplete => ("incomplete", None),
                };
                VariantResultJson {
                    name: row.variant.name.clone(),
                    assignment: row.variant.assignment.clone(),
                    status,
                    error,
                    metrics: (row.metrics.iter())
                        .map(|m| m.is_finite().then_some(*m))
                        .collect(),
                    time_ms: millis(row.time),
                    hits: row.hits,
                    steps: row.steps,
                }
            })
            .collect();
        VariantsJson {
            dimensions: results.dimensions.clone(),
            metrics: results.metrics.clone(),
            variants,
        }
    }
}

/// A published version; with its spec when one version is asked for.
#[derive(Serialize)]
pub(crate) struct VersionJson {
    pipeline: String,
    version: u32,
    spec_hash: String,
    enabled: bool,
    is_default: bool,
    published_ms: i64,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    spec: Option<String>,
}

impl VersionJson {
    pub(crate) fn new(v: &PublishedVersion, spec: Option<String>) -> Self {
        VersionJson {
            pipeline: v.pipeline.clone(),
            version: v.version,
            spec_hash: v.spec_hash.clone(),
            enabled: v.enabled,
            is_default: v.is_default,
            published_ms: ms(v.published),
            source: v.source.clone(),
            spec,
        }
    }
}

/// A published pipeline with its versions.
#[derive(Serialize)]
pub(crate) struct PipelineJson {
    name: String,
    default_version: Option<u32>,
    versions: Vec<VersionJson>,
}

impl PipelineJson {
    /// Group `versions` (sorted by name, then version) by pipeline.
    pub(crate) fn grouped(versions: &[PublishedVersion]) -> Vec<PipelineJson> {
        let mut out: Vec<PipelineJson> = Vec::new();
        for v in versions {
            if out.last().is_none_or(|p| p.name != v.pipeline) {
                out.push(PipelineJson {
                    name: v.pipeline.clone(),
                    default_version: None,
                    versions: Vec::new(),
                });
            }
            let Some(p) = out.last_mut() else { continue };
            if v.is_default {
                p.default_version = Some(v.version);
            }
            p.versions.push(VersionJson::new(v, None));
        }
        out
    }
}
