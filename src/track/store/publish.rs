//! Published pipelines (`fuseflow publish`, `POST /pipelines`): numbered
//! versions of a spec per name, one of them the default, each enabled or not.

use std::path::PathBuf;
use std::time::SystemTime;

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::RunStore;
use crate::error::{Error, Result};
use crate::track::clock::{from_ms, to_ms};

/// One version of a published pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedVersion {
    /// The pipeline's published name.
    pub pipeline: String,
    /// Its number, from 1 up.
    pub version: u32,
    /// BLAKE3 of the spec text (hex).
    pub spec_hash: String,
    /// Whether it may be triggered.
    pub enabled: bool,
    /// Whether a trigger that names no version runs this one.
    pub is_default: bool,
    /// When it was published.
    pub published: SystemTime,
    /// Where it came from: the spec file's path, or `rest`.
    pub source: String,
}

/// A published version with its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedSpec {
    /// The version.
    pub version: PublishedVersion,
    /// The spec text.
    pub spec: String,
    /// The path the spec's relative paths are resolved against (as if the
    /// spec were a file there).
    pub anchor: PathBuf,
}

/// What a publish did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// The version the spec is published as.
    pub version: PublishedVersion,
    /// Whether it is a new version (`false`: the latest had the same spec).
    pub created: bool,
}

const VERSION_SELECT: &str = "
    SELECT p.name, p.version, p.spec_hash, p.enabled, p.published_ms, p.source,
           d.version IS NOT NULL
    FROM published p
    LEFT JOIN published_defaults d ON d.name = p.name AND d.version = p.version";

impl RunStore {
    /// Publish `spec` as pipeline `name`: a new version unless the latest
    /// already has this spec and anchor. The new (or found) version becomes
    /// the default when `make_default`, or when the pipeline has none yet.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the database cannot be written.
    pub fn publish(
        &self,
        name: &str,
        spec: &str,
        anchor: &std::path::Path,
        source: &str,
        make_default: bool,
    ) -> Result<Publication> {
        let hash = blake3::hash(spec.as_bytes()).to_hex().to_string();
        let anchor = anchor.to_string_lossy().into_owned();
        let ms = to_ms(SystemTime::now());
        let (version, created) = self.write(|tx| {
            let latest: Option<(u32, String, String)> = tx
                .query_row(
                    "SELECT version, spec_hash, anchor FROM published WHERE name = ?1
                     ORDER BY version DESC LIMIT 1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let (version, created) = match latest {
                Some((v, h, a)) if h == hash && a == anchor => (v, false),
                latest => {
                    let v = latest.map_or(1, |(v, _, _)| v + 1);
                    tx.execute(
                        "INSERT INTO published
                           (name, version, spec_hash, spec, anchor, source, enabled, published_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7)",
                        params![name, v, hash, spec, anchor, source, ms],
                    )?;
                    (v, true)
                }
            };
            let has_default = tx
                .query_row(
                    "SELECT 1 FROM published_defaults WHERE name = ?1",
                    [name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if make_default || !has_default {
                set_default(tx, name, version)?;
            }
            Ok((version, created))
        })?;
        Ok(Publication {
            version: self.published_version(name, version)?,
            created,
        })
    }

    /// Every published version, by pipeline name and version.
    ///
    /// # Errors
    /// [`Error::RunStore`] when the database cannot be read.
    pub fn published(&self) -> Result<Vec<PublishedVersion>> {
        self.versions_of(None)
    }

    /// The versions of pipeline `name`, oldest first.
    ///
    /// # Errors
    /// [`Error::NotFound`] when nothing is published under `name`.
    pub fn published_versions(&self, name: &str) -> Result<Vec<PublishedVersion>> {
        let versions = self.versions_of(Some(name))?;
        if versions.is_empty() {
            return Err(self.unpublished(name));
        }
        Ok(versions)
    }

    /// The versions of `name`, or of every pipeline.
    fn versions_of(&self, name: Option<&str>) -> Result<Vec<PublishedVersion>> {
        let conn = self.conn();
        let sql =
            format!("{VERSION_SELECT} WHERE ?1 IS NULL OR p.name = ?1 ORDER BY p.name, p.version");
        let mut stmt = conn.prepare(&sql).map_err(|e| self.sql(e))?;
        stmt.query_map([name], version_of)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.sql(e))
    }

    /// Version `version` of pipeline `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the versions there are.
    pub fn published_version(&self, name: &str, version: u32) -> Result<PublishedVersion> {
        let versions = self.published_versions(name)?;
        let listed = list(&versions);
        (versions.into_iter().find(|v| v.version == version)).ok_or_else(|| {
            Error::not_found(format!(
                "pipeline '{name}' has no version {version}; its versions are {listed}"
            ))
        })
    }

    /// The spec of version `version` of `name`, or of its default version.
    ///
    /// # Errors
    /// [`Error::NotFound`] as [`RunStore::published_version`].
    pub fn published_spec(&self, name: &str, version: Option<u32>) -> Result<PublishedSpec> {
        let version = match version {
            Some(v) => self.published_version(name, v)?,
            None => (self
                .published_versions(name)?
                .into_iter()
                .find(|v| v.is_default))
            .ok_or_else(|| Error::Internal(format!("pipeline '{name}' has no default")))?,
        };
        let conn = self.conn();
        let (spec, anchor): (String, String) = conn
            .query_row(
                "SELECT spec, anchor FROM published WHERE name = ?1 AND version = ?2",
                params![name, version.version],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.sql(e))?;
        Ok(PublishedSpec {
            version,
            spec,
            anchor: PathBuf::from(anchor),
        })
    }

    /// Make `version` the default of `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] as [`RunStore::published_version`].
    pub fn set_default_version(&self, name: &str, version: u32) -> Result<PublishedVersion> {
        self.published_version(name, version)?;
        self.write(|tx| set_default(tx, name, version))?;
        self.published_version(name, version)
    }

    /// Enable or disable `version` of `name` (a disabled version is not run).
    ///
    /// # Errors
    /// [`Error::NotFound`] as [`RunStore::published_version`].
    pub fn set_version_enabled(
        &self,
        name: &str,
        version: u32,
        enabled: bool,
    ) -> Result<PublishedVersion> {
        self.published_version(name, version)?;
        self.write(|tx| {
            tx.execute(
                "UPDATE published SET enabled = ?3 WHERE name = ?1 AND version = ?2",
                params![name, version, enabled],
            )
        })?;
        self.published_version(name, version)
    }

    fn unpublished(&self, name: &str) -> Error {
        let names: Vec<String> = (self.published().unwrap_or_default().into_iter())
            .map(|v| v.pipeline)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let known = match names.is_empty() {
            true => "nothing is published yet; `fuseflow publish SPEC` publishes one".to_string(),
            false => format!("published: {}", names.join(", ")),
        };
        Error::not_found(format!("no pipeline '{name}' is published; {known}"))
    }
}

fn set_default(tx: &Transaction<'_>, name: &str, version: u32) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO published_defaults (name, version) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET version = ?2",
        params![name, version],
    )
}

fn version_of(row: &Row<'_>) -> rusqlite::Result<PublishedVersion> {
    Ok(PublishedVersion {
        pipeline: row.get(0)?,
        version: row.get(1)?,
        spec_hash: row.get(2)?,
        enabled: row.get(3)?,
        published: from_ms(row.get(4)?),
        source: row.get(5)?,
        is_default: row.get(6)?,
    })
}

/// `1, 2 (default), 3 (disabled)`.
fn list(versions: &[PublishedVersion]) -> String {
    let named: Vec<String> = versions
        .iter()
        .map(|v| {
            let mut s = v.version.to_string();
            if v.is_default {
                s.push_str(" (default)");
            }
            if !v.enabled {
                s.push_str(" (disabled)");
            }
            s
        })
        .collect();
    named.join(", ")
}
