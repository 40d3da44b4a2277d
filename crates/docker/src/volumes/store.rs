//! The local driver's volumes on disk: `<dir>/<name>/_data` holds the data (what containers
//! mount) and `<dir>/<name>/volume.json` what inspect shows besides (labels, options,
//! creation time). A directory with `_data` and no readable json is still a volume (one
//! whose creation was cut short), with empty metadata: nothing on disk is ever invisible.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use bollard_stubs::models::{Volume, VolumeScopeEnum};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

const DATA: &str = "_data";
const META: &str = "volume.json";
/// Removal renames a volume to `.<name>.removing` first, so a removal cut short never leaves
/// half a volume in the list (names never start with `.`); the next listing finishes it.
const REMOVING: &str = ".removing";

/// What a volume carries besides its data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// RFC 3339, seconds (as dockerd shows `CreatedAt`).
    pub created_at: String,
}

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vol {
    pub name: String,
    pub meta: Meta,
    /// Its `_data` directory.
    pub data: PathBuf,
}

impl Vol {
    /// dockerd's `Volume` JSON.
    pub fn to_docker(&self) -> Volume {
        Volume {
            name: self.name.clone(),
            driver: super::DRIVER.to_string(),
            mountpoint: self.data.display().to_string(),
            created_at: Some(self.meta.created_at.clone()),
            labels: to_map(&self.meta.labels),
            scope: Some(VolumeScopeEnum::LOCAL),
            options: to_map(&self.meta.options),
            ..Default::default()
        }
    }
}

fn to_map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The volumes under one directory (`<root>/volumes`).
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// dockerd's local driver's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, with its words.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.len() < 2 {
        return Err(ApiError::bad_request(format!(
            "create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(ApiError::bad_request(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    Ok(())
}

/// A fresh anonymous volume name: 64 hex digits, like dockerd's.
pub fn anonymous_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "volume\n{}\n{}\n{}",
        berth_engine::containers::lifecycle::now_ns(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    berth_core::Digest::of(seed.as_bytes()).hex().to_string()
}

/// Now, as `CreatedAt` shows it.
fn now_rfc3339() -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn internal(what: &str, path: &Path, e: io::Error) -> ApiError {
    ApiError::internal(format!("{what} {}: {e}", path.display()))
}

impl Store {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Where a volume's data is (whether or not it exists).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DATA)
    }

    /// The volume, if there is one by that name.
    pub fn get(&self, name: &str) -> Option<Vol> {
        if validate_name(name).is_err() {
            return None;
        }
        let data = self.data_dir(name);
        if !data.is_dir() {
            return None;
        }
        let meta = std::fs::read(self.dir.join(name).join(META))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Some(Vol {
            name: name.to_string(),
            meta,
            data,
        })
    }

    /// Every volume, by name; removals cut short are finished on the way.
    pub fn list(&self) -> Result<Vec<Vol>, ApiError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(internal("reading", &self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| internal("reading", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(REMOVING) {
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            }
            if let Some(v) = self.get(&name) {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Creates the volume, or answers the one of that name (dockerd's create is idempotent);
    /// true when it was made now.
    pub fn create(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<(Vol, bool), ApiError> {
        validate_name(name)?;
        if let Some(v) = self.get(name) {
            return Ok((v, false));
        }
        let top = self.dir.join(name);
        let data = top.join(DATA);
        std::fs::create_dir_all(&data).map_err(|e| internal("creating", &data, e))?;
        // What containers see at the mount point before anything is copied in.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| internal("setting the mode of", &data, e))?;
        let meta = Meta {
            labels,
            options,
            created_at: now_rfc3339(),
        };
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| ApiError::internal(format!("encoding volume {name}: {e}")))?;
        let tmp = top.join(format!("{META}.tmp"));
        std::fs::write(&tmp, json).map_err(|e| internal("writing", &tmp, e))?;
        std::fs::rename(&tmp, top.join(META)).map_err(|e| internal("renaming", &tmp, e))?;
        Ok((
            Vol {
                name: name.to_string(),
                meta,
                data,
            },
            true,
        ))
    }

    /// [`Store::remove`] on a blocking thread: a volume may hold many files.
    pub async fn remove_async(&self, name: &str) -> Result<u64, ApiError> {
        let (store, owned) = (self.clone(), name.to_string());
        tokio::task::spawn_blocking(move || store.remove(&owned))
            .await
            .map_err(|e| ApiError::internal(format!("removing volume {name}: {e}")))?
    }

    /// Removes the volume and its data; the bytes its files took.
    pub fn remove(&self, name: &str) -> Result<u64, ApiError> {
        let top = self.dir.join(name);
        let size = dir_size(&top.join(DATA));
        let doomed = self.dir.join(format!(".{name}{REMOVING}"));
        std::fs::rename(&top, &doomed).map_err(|e| internal("removing", &top, e))?;
        std::fs::remove_dir_all(&doomed).map_err(|e| internal("removing", &doomed, e))?;
        Ok(size)
    }
}

/// The bytes of the files under `dir` (not following symlinks); what removing it frees.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            total += dir_size(&e.path());
        } else {
            total += meta.len();
        }
    }
    total
}
