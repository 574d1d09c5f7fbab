//! Routes of step outputs: a download streamed batch by batch as an Arrow
//! IPC stream or Parquet, and a preview of the first rows as JSON.

use std::io::Write;
use std::sync::Arc;

use arrow_array::Array;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::api::{ApiError, ApiResult};
use super::{AppState, blocking};
use crate::data::Table;
use crate::exec::fetch_output;

/// Bytes of encoded output per chunk sent.
const CHUNK: usize = 1 << 20;

/// Chunks buffered between the encoder and the connection.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The most rows a preview shows.
const PREVIEW_MAX: usize = 1000;

/// `?port=P&format=arrow|parquet`.
#[derive(Deserialize)]
pub(crate) struct OutputQuery {
    port: Option<String>,
    format: Option<String>,
}

#[derive(Clone, Copy)]
enum Format {
    Arrow,
    Parquet,
}

/// `GET /runs/{run}/steps/{step}/output`: the output, encoded as it is
/// sent; an output the run did not store is computed again first.
pub(crate) async fn download(
    State(state): State<Arc<AppState>>,
    UrlPath((run, step)): UrlPath<(String, String)>,
    Query(query): Query<OutputQuery>,
) -> ApiResult<Response> {
    let format = match query.format.as_deref() {
        None | Some("arrow") => Format::Arrow,
        Some("parquet") => Format::Parquet,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "no output format '{other}'; use arrow or parquet"
            )));
        }
    };
    let extension = match format {
        Format::Arrow => "arrows",
        Format::Parquet => "parquet",
    };
    let name = format!("{step}.{extension}");
    let table = {
        let port = query.port.clone();
        blocking(&state, move |state| {
            Ok(fetch_output(&state.ws, &run, &step, port.as_deref())?)
        })
        .await?
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        // A client that went away closes the channel: the encoder stops at
        // its next write, and there is no one left to tell.
        if let Err(e) = encode(&table, format, &mut sink).and_then(|()| sink.flush()) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    let kind = match format {
        Format::Arrow => "application/vnd.apache.arrow.stream",
        Format::Parquet => "application/vnd.apache.parquet",
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Write `table` to `out` batch by batch.
fn encode(table: &Table, format: Format, out: &mut ChannelWriter) -> std::io::Result<()> {
    let arrow = std::io::Error::other::<arrow_schema::ArrowError>;
    let parquet = std::io::Error::other::<parquet::errors::ParquetError>;
    match format {
        Format::Arrow => {
            let mut writer =
                arrow_ipc::writer::StreamWriter::try_new(out, table.schema()).map_err(arrow)?;
            for batch in table.batches() {
                writer.write(batch).map_err(arrow)?;
            }
            writer.finish().map_err(arrow)
        }
        Format::Parquet => {
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(out, table.schema().clone(), None)
                    .map_err(parquet)?;
            for batch in table.batches() {
                writer.write(batch).map_err(parquet)?;
            }
            writer.close().map(|_| ()).map_err(parquet)
        }
    }
}

/// A writer whose bytes go to the response body in chunks.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

/// `?port=P&rows=N`.
#[derive(Deserialize)]
pub(crate) struct PreviewQuery {
    port: Option<String>,
    rows: Option<usize>,
}

#[derive(Serialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    nullable: bool,
}

#[derive(Serialize)]
pub(crate) struct Preview {
    schema: Vec<Column>,
    /// Values as text, as `fuseflow` prints them; nulls as `null`.
    rows: Vec<Vec<Option<String>>>,
    total_rows: usize,
}

/// `GET /runs/{run}/steps/{step}/preview`: the first rows.
pub(crate) async fn preview(
    State(state): State<Arc<AppState>>,
    UrlPath((run, step)): UrlPath<(String, String)>,
    Query(query): Query<PreviewQuery>,
) -> ApiResult<Json<Preview>> {
    let wanted = query.rows.unwrap_or(20).min(PREVIEW_MAX);
    blocking(&state, move |state| {
        let table = fetch_output(&state.ws, &run, &step, query.port.as_deref())?;
        let schema = (table.schema().fields().iter())
            .map(|f| Column {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect();
        let options = FormatOptions::default();
        let mut rows = Vec::with_capacity(wanted);
        for batch in table.batches() {
            let formatters = (batch.columns().iter())
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(crate::error::Error::from)?;
            for i in 0..batch.num_rows() {
                if rows.len() == wanted {
                    break;
                }
                let row = (batch.columns().iter().zip(&formatters))
                    .map(|(c, f)| (!c.is_null(i)).then(|| f.value(i).to_string()))
                    .collect();
                rows.push(row);
            }
        }
        Ok(Json(Preview {
            schema,
            rows,
            total_rows: table.num_rows(),
        }))
    })
    .await
}
