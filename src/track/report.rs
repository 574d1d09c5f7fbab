//! Plain-text renderings for the command line: `fuseflow runs`, `fuseflow
//! show` and `fuseflow cache`. Times are shown in UTC and nothing depends on the
//! terminal or the locale, so the text is the same everywhere and tests can
//! compare it exactly.

use std::time::{Duration, SystemTime};

use super::clock::Utc;
use super::record::{RunDetail, RunSummary, StepRunRow, spec_param_values};
use crate::cache::{GcReport, ObjectInfo};
use crate::data::format_bytes;

/// A table of runs, one per line, in the order given: id, pipeline, the
/// pipeline it was cloned from (`cloned_from[i]` for run `i`; the column
/// only when some run has one), status, start, duration, steps, cache hits,
/// parameters (only when some run gave any), error.
pub fn render_runs(runs: &[RunSummary], cloned_from: &[Option<String>]) -> String {
    if runs.is_empty() {
        return "no runs recorded\n".to_string();
    }
    // A FROM column only where some run's pipeline is a clone.
    let with_origin = cloned_from.iter().any(Option::is_some);
    // A PARAMS column only where some run gave its spec's parameters values.
    let params: Vec<Option<String>> = runs.iter().map(|r| param_values(&r.params)).collect();
    let with_params = params.iter().any(Option::is_some);
    let rows = runs
        .iter()
        .zip(params)
        .enumerate()
        .map(|(i, (r, params))| {
            let mut row = vec![r.id.to_string(), r.pipeline.clone()];
            if with_origin {
                let origin = cloned_from.get(i).cloned().flatten();
                row.push(origin.unwrap_or_else(|| "-".into()));
            }
            row.extend([
                r.status.to_string(),
                time(r.started),
                r.duration.map_or_else(|| "-".to_string(), duration),
                r.steps.to_string(),
                r.hits.to_string(),
            ]);
            if with_params {
                row.push(params.unwrap_or_else(|| "-".into()));
            }
            row.push(r.error.as_deref().map_or_else(String::new, one_line));
            row
        })
        .collect();
    let mut columns = vec![("RUN", Left), ("PIPELINE", Left)];
    if with_origin {
        columns.push(("FROM", Left));
    }
    columns.extend([
        ("STATUS", Left),
        ("STARTED (UTC)", Left),
        ("DURATION", Right),
        ("STEPS", Right),
        ("HITS", Right),
    ]);
    if with_params {
        columns.push(("PARAMS", Left));
    }
    columns.push(("ERROR", Left));
    table(&columns, rows)
}

/// A run's parameter values on one line (`factor=3, fill=4.0`), when it
/// gave its spec's parameters any.
fn param_values(text: &str) -> Option<String> {
    let values: Vec<String> = spec_param_values(text)?
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Some(values.join(", "))
}

/// One run: its header, a table of its steps in recorded order (kind, device,
/// cache hit or miss, the run a hit reused, duration in milliseconds, rows,
/// bytes), the steps' errors and notes, then its metrics.
pub fn render_run(detail: &RunDetail) -> String {
    let mut out = run_header(&detail.summary);
    if !detail.steps.is_empty() {
        out.push('\n');
        out.push_str(&step_table(&detail.steps));
        let remarks = step_remarks(&detail.steps);
        if !remarks.is_empty() {
            out.push('\n');
            out.push_str(&remarks);
        }
    }
    if !detail.metrics.is_empty() {
        let rows = detail
            .metrics
            .iter()
            .map(|m| vec![m.step.clone(), m.name.clone(), m.value.to_string()])
            .collect();
        out.push('\n');
        out.push_str(&table(
            &[("STEP", Left), ("METRIC", Left), ("VALUE", Right)],
            rows,
        ));
    }
    out
}

/// A run's labelled fields (id, pipeline, status, times, host, params, steps).
fn run_header(s: &RunSummary) -> String {
    let mut out = String::new();
    let mut field = |label: &str, value: &str| {
        let mut lines = value.lines();
        out.push_str(&format!("{label:<10}{}\n", lines.next().unwrap_or("")));
        for line in lines {
            out.push_str(&format!("{:<10}{line}\n", ""));
        }
    };
    field("run", s.id.as_str());
    field(
        "pipeline",
        &format!("{} (spec {})", s.pipeline, s.spec_hash),
    );
    field(
        "status",
        &match &s.error {
            Some(e) => format!("{}: {e}", s.status),
            None => s.status.to_string(),
        },
    );
    field("started", &format!("{} UTC", time(s.started)));
    if let (Some(ended), Some(d)) = (s.ended, s.duration) {
        field("ended", &format!("{} UTC ({})", time(ended), duration(d)));
    }
    field("host", &format!("{} (pid {})", s.host, s.pid));
    field("params", if s.params.is_empty() { "-" } else { &s.params });
    field(
        "steps",
        &format!(
            "{} ({} cache hits, {} failed)",
            s.steps, s.hits, s.failed_steps
        ),
    );
    out
}

/// The steps in recorded order: kind, device, cache hit or miss, the run a
/// hit reused, milliseconds, rows and bytes.
fn step_table(steps: &[StepRunRow]) -> String {
    let rows = steps
        .iter()
        .map(|row| {
            let r = &row.record;
            vec![
                r.step.clone(),
                r.kind.clone(),
                // The device's kind; its full description is listed below.
                r.device.split(':').next().unwrap_or_default().to_string(),
                if r.error.is_some() {
                    "failed"
                } else if r.cache_hit {
                    "hit"
                } else {
                    "miss"
                }
                .to_string(),
                r.reused_from
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |id| id.to_string()),
                format!("{:.1}", r.duration.as_secs_f64() * 1000.0),
                per_output(&r.sizes, r.rows, |(rows, _)| rows.to_string()),
                per_output(&r.sizes, r.bytes, |(_, b)| format_bytes(b)),
            ]
        })
        .collect();
    table(
        &[
            ("STEP", Left),
            ("KIND", Left),
            ("DEVICE", Left),
            ("CACHE", Left),
            ("REUSED FROM", Left),
            ("MS", Right),
            ("ROWS", Right),
            ("BYTES", Right),
        ],
        rows,
    )
}

/// The devices the steps ran on, described in full, then each step's error
/// and notes.
fn step_remarks(steps: &[StepRunRow]) -> String {
    let mut remarks = String::new();
    let mut devices: Vec<&str> = steps
        .iter()
        .map(|row| row.record.device.as_str())
        .filter(|d| d.contains(':'))
        .collect();
    devices.sort_unstable();
    devices.dedup();
    for device in devices {
        remarks.push_str(&format!("  device {device}\n"));
    }
    for row in steps {
        let r = &row.record;
        if let Some(e) = &r.error {
            remarks.push_str(&format!("  {}: error: {}\n", r.step, one_line(e)));
        }
        if let Some(n) = &r.notes {
            remarks.push_str(&format!("  {}: note: {}\n", r.step, one_line(n)));
        }
    }
    remarks
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    Left,
    Right,
}
pub(super) use Align::{Left, Right};

/// `fuseflow cache ls`: the objects, least recently used first (hash, size,
/// time since last use as of `now`), then their count and total size.
pub fn render_objects(objects: &[ObjectInfo], now: SystemTime) -> String {
    let mut objects: Vec<&ObjectInfo> = objects.iter().collect();
    objects.sort_by_key(|o| o.last_used);
    let total: u64 = objects.iter().map(|o| o.bytes).sum();
    let rows = objects
        .iter()
        .map(|o| {
            let age = now.duration_since(o.last_used).unwrap_or_default();
            vec![
                o.hash.to_string(),
                format_bytes(o.bytes),
                format!("{} ago", duration(age)),
            ]
        })
        .collect();
    let mut out = if objects.is_empty() {
        String::new()
    } else {
        table(
            &[("OBJECT", Left), ("SIZE", Right), ("LAST USED", Right)],
            rows,
        )
    };
    out.push_str(&format!(
        "{} objects, {}\n",
        objects.len(),
        format_bytes(total)
    ));
    out
}

/// `fuseflow cache gc` and `clear`: what was removed and what remains.
pub fn render_gc(report: &GcReport) -> String {
    let references = match report.references {
        0 => String::new(),
        n => format!(" and {n} references to source files"),
    };
    format!(
        "removed {} objects ({}){references}; {} remain\n",
        report.removed,
        format_bytes(report.freed_bytes),
        format_bytes(report.remaining_bytes)
    )
}

/// One cell for a step's outputs: each output's figure joined by `/`, or
/// `total` for a step recorded without per-output sizes.
fn per_output(sizes: &[(u64, u64)], total: u64, cell: impl Fn((u64, u64)) -> String) -> String {
    match sizes {
        [] => cell((total, total)),
        sizes => sizes.iter().map(|&s| cell(s)).collect::<Vec<_>>().join("/"),
    }
}

/// Columns padded to their widest cell, two spaces apart, no trailing spaces.
pub(super) fn table(columns: &[(&str, Align)], rows: Vec<Vec<String>>) -> String {
    let header: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    let all: Vec<Vec<String>> = std::iter::once(header).chain(rows).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| all.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &all {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[c] - cell.chars().count());
            match columns[c].1 {
                Left => {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
                Right => {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn time(t: SystemTime) -> String {
    Utc::of(t).readable()
}

/// `850 ms`, `12.34 s`, `3m05s`, `2h07m`.
pub(super) fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 1 {
        format!("{} ms", d.as_millis())
    } else if secs < 60 {
        format!("{:.2} s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    }
}

/// Multi-line text folded onto one line, for table cells and remarks.
pub(super) fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_least_recently_used_first() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let object = |byte: u8, bytes: u64, age: u64| ObjectInfo {
            hash: crate::data::ContentHash::from_bytes([byte; 32]),
            bytes,
            last_used: now - Duration::from_secs(age),
            path: std::path::PathBuf::new(),
        };
        let (a, b) = ("aa".repeat(32), "bb".repeat(32));
        let text = render_objects(&[object(0xaa, 1536, 5), object(0xbb, 100, 7200)], now);
        assert_eq!(
            text,
            format!(
                "OBJECT{}     SIZE   LAST USED\n\
                 {b}    100 B   2h00m ago\n\
                 {a}  1.5 KiB  5.00 s ago\n\
                 2 objects, 1.6 KiB\n",
                " ".repeat(58)
            )
        );
        assert_eq!(render_objects(&[], now), "0 objects, 0 B\n");
    }

    #[test]
    fn units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_millis(12_345)), "12.35 s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(7620)), "2h07m");
    }
}
