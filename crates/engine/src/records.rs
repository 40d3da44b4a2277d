//! Records on disk (`<dir>/<id>.json`, temp → fsync → rename) and in memory: one store for
//! pods, one for containers.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_core::container::record::{CONTAINER_RECORD_VERSION, ContainerRecord};
use berth_core::pod::record::{PodRecord, RECORD_VERSION};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a store needs of a record.
pub trait Record: Serialize + DeserializeOwned + Clone {
    const VERSION: u32;
    fn id(&self) -> &str;
    fn version(&self) -> u32;
    fn created_at(&self) -> i64;
}

impl Record for PodRecord {
    const VERSION: u32 = RECORD_VERSION;
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn created_at(&self) -> i64 {
        self.created_at
    }
}

impl Record for ContainerRecord {
    const VERSION: u32 = CONTAINER_RECORD_VERSION;
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn created_at(&self) -> i64 {
        self.created_at
    }
}

pub type PodStore = RecordStore<PodRecord>;
pub type ContainerStore = RecordStore<ContainerRecord>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("record store {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("record {path} is unreadable: {error}")]
    Corrupt { path: PathBuf, error: String },
    #[error("id prefix {0:?} matches more than one")]
    Ambiguous(String),
}

fn io(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        error,
    }
}

pub struct RecordStore<T> {
    dir: PathBuf,
    records: Mutex<HashMap<String, T>>,
    /// Orders the publishing step (rename, then the in-memory copy) of concurrent writes,
    /// so the file and the copy end as the same write.
    publish: Mutex<()>,
}

/// Tells apart the temp files of concurrent writes of one record (the exit supervisor and
/// a request may both record the same exit); with one shared name, one write's rename
/// found its file taken by the other and failed.
static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl<T: Record> RecordStore<T> {
    /// Loads every record. Unreadable records are reported, not fatal: berthd keeps serving
    /// the others and the file is left for a person to inspect.
    pub fn open(dir: &Path) -> Result<(Self, Vec<StoreError>), StoreError> {
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut records = HashMap::new();
        let mut bad = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let entry = entry.map_err(|e| io(dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let rec = fs::read(&path).map_err(|e| io(&path, e)).and_then(|b| {
                serde_json::from_slice::<T>(&b).map_err(|e| StoreError::Corrupt {
                    path: path.clone(),
                    error: e.to_string(),
                })
            });
            match rec {
                Ok(r) if r.version() == T::VERSION => {
                    records.insert(r.id().to_string(), r);
                }
                Ok(r) => bad.push(StoreError::Corrupt {
                    path,
                    error: format!("record version {} is not {}", r.version(), T::VERSION),
                }),
                Err(e) => bad.push(e),
            }
        }
        Ok((
            Self {
                dir: dir.to_path_buf(),
                records: Mutex::new(records),
                publish: Mutex::new(()),
            },
            bad,
        ))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, T>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Persists then publishes a record.
    pub fn put(&self, rec: &T) -> Result<(), StoreError> {
        self.write(rec, true)
    }

    /// Writes then publishes a record without waiting for the disk: still temp → rename,
    /// so a crash of berthd leaves the old or the new file (the page cache outlives the
    /// process), but a crash of the host may lose it. Only for a record whose loss in a
    /// host crash leaves nothing behind that outlives the reboot (the reservation of a
    /// new pod: it holds no IP yet, and its cgroups and pins die with the host). Each
    /// durable write costs two fsyncs, 4 ms and more each on a busy disk.
    pub fn put_unsynced(&self, rec: &T) -> Result<(), StoreError> {
        self.write(rec, false)
    }

    fn write(&self, rec: &T, durable: bool) -> Result<(), StoreError> {
        let path = self.dir.join(format!("{}.json", rec.id()));
        let seq = TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.dir.join(format!("{}.{seq}.tmp", rec.id()));
        let data = serde_json::to_vec_pretty(rec).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            error: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(&data).map_err(|e| io(&tmp, e))?;
        if durable {
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        {
            let _order = self.publish.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = fs::rename(&tmp, &path) {
                let _ = fs::remove_file(&tmp);
                return Err(io(&path, e));
            }
            self.map().insert(rec.id().to_string(), rec.clone());
        }
        if durable && let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    pub fn delete(&self, id: &str) -> Result<(), StoreError> {
        let path = self.dir.join(format!("{id}.json"));
        let _order = self.publish.lock().unwrap_or_else(|p| p.into_inner());
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
        self.map().remove(id);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<T> {
        self.map().get(id).cloned()
    }

    /// By full id or unique prefix, as crictl lets people type.
    pub fn resolve(&self, id: &str) -> Result<Option<T>, StoreError> {
        let map = self.map();
        if let Some(r) = map.get(id) {
            return Ok(Some(r.clone()));
        }
        if id.is_empty() {
            return Ok(None);
        }
        let mut found = map.values().filter(|r| r.id().starts_with(id));
        let first = found.next().cloned();
        if found.next().is_some() {
            return Err(StoreError::Ambiguous(id.to_string()));
        }
        Ok(first)
    }

    pub fn find(&self, pred: impl Fn(&T) -> bool) -> Option<T> {
        self.map().values().find(|r| pred(r)).cloned()
    }

    /// All records, oldest first.
    /// `f` of every record, oldest first, without copying the records: a pod record carries
    /// its whole config, and the kubelet lists every second.
    pub fn select<U>(&self, f: impl FnMut(&T) -> Option<U>) -> Vec<U> {
        let map = self.map();
        let mut v: Vec<&T> = map.values().collect();
        v.sort_by(|a, b| a.created_at().cmp(&b.created_at()).then(a.id().cmp(b.id())));
        v.into_iter().filter_map(f).collect()
    }

    pub fn list(&self) -> Vec<T> {
        let mut v: Vec<T> = self.map().values().cloned().collect();
        v.sort_by(|a, b| a.created_at().cmp(&b.created_at()).then(a.id().cmp(b.id())));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
    struct Note {
        id: String,
        n: u32,
    }

    impl Record for Note {
        const VERSION: u32 = 1;
        fn id(&self) -> &str {
            &self.id
        }
        fn version(&self) -> u32 {
            1
        }
        fn created_at(&self) -> i64 {
            0
        }
    }

    #[test]
    fn concurrent_writes_of_one_record_all_land_and_agree() {
        let dir = tempfile::tempdir().unwrap();
        let (store, bad) = RecordStore::<Note>::open(dir.path()).unwrap();
        assert!(bad.is_empty());
        let store = std::sync::Arc::new(store);
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let n = Note {
                            id: "one".into(),
                            n: t * 100 + i,
                        };
                        store.put_unsynced(&n).expect("every write succeeds");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let on_disk: Note =
            serde_json::from_slice(&fs::read(dir.path().join("one.json")).unwrap()).unwrap();
        assert_eq!(Some(on_disk), store.get("one"));
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temp file is left: {left:?}");
    }
}
