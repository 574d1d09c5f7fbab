//! The variants of a sweep's run, recorded when the run begins and read
//! back for its results, and the metrics of one step run, which a run that
//! reuses the step records again.

use rusqlite::params;

use super::RunStore;
use crate::error::Result;
use crate::track::record::{RunId, Variant};

impl RunStore {
    /// Record the variants of the sweep `run` runs, in order, with what
    /// each assigns and the steps that compute it.
    ///
    /// # Errors
    /// [`Error::RunStore`](crate::Error::RunStore) when the run is unknown
    /// or already finished, or the database cannot be written.
    pub fn record_variants(&self, run: &RunId, variants: &[Variant]) -> Result<()> {
        self.write(|tx| {
            if let Err(e) = self.require_running(tx, run)? {
                return Ok(Err(e));
            }
            for (seq, v) in variants.iter().enumerate() {
                tx.execute(
                    "INSERT INTO sweep_variants (run, seq, name, assignment, steps)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        run.as_str(),
                        seq as i64,
                        v.name,
                        pairs_text(&v.assignment)?,
                        pairs_text(&v.steps)?
                    ],
                )?;
            }
            Ok(Ok(()))
        })?
    }

    /// The metrics `step` of `run` recorded, `(name, value)` in the order
    /// recorded: what a later run that reuses the step's outputs records.
    ///
    /// # Errors
    /// [`Error::RunStore`](crate::Error::RunStore) when the database cannot
    /// be read.
    pub fn step_metrics(&self, run: &RunId, step: &str) -> Result<Vec<(String, f64)>> {
        let conn = self.conn();
        let read = || -> rusqlite::Result<Vec<(String, f64)>> {
            let mut stmt = conn.prepare(
                "SELECT name, value FROM metrics WHERE run = ?1 AND step = ?2 ORDER BY seq",
            )?;
            stmt.query_map(params![run.as_str(), step], |row| {
                let value: Option<f64> = row.get(1)?;
                Ok((row.get(0)?, value.unwrap_or(f64::NAN)))
            })?
            .collect()
        };
        read().map_err(|e| self.sql(e))
    }

    /// The variants of the sweep `run` ran, in order; empty for a run that
    /// is not a sweep's.
    ///
    /// # Errors
    /// [`Error::RunStore`](crate::Error::RunStore) when the database cannot
    /// be read.
    pub fn variants(&self, run: &RunId) -> Result<Vec<Variant>> {
        let conn = self.conn();
        let read = || -> rusqlite::Result<Vec<Variant>> {
            let mut stmt = conn.prepare(
                "SELECT name, assignment, steps FROM sweep_variants WHERE run = ?1 ORDER BY seq",
            )?;
            stmt.query_map([run.as_str()], |row| {
                Ok(Variant {
                    name: row.get(0)?,
                    assignment: pairs_of(&row.get::<_, String>(1)?, 1)?,
                    steps: pairs_of(&row.get::<_, String>(2)?, 2)?,
                })
            })?
            .collect()
        };
        read().map_err(|e| self.sql(e))
    }
}

/// `(key, value)` pairs as the store keeps them: a TOML document, so that
/// any text (a string parameter's value with tabs or newlines) survives.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pairs {
    pairs: Vec<(String, String)>,
}

fn pairs_text(pairs: &[(String, String)]) -> rusqlite::Result<String> {
    let pairs = Pairs {
        pairs: pairs.to_vec(),
    };
    toml::to_string(&pairs).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn pairs_of(text: &str, column: usize) -> rusqlite::Result<Vec<(String, String)>> {
    toml::from_str::<Pairs>(text).map(|p| p.pairs).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}
