//! Garbage collection by reference counting: a blob or snapshot is kept while any image
//! record or any pull in progress (a lease) references it; everything else is deleted.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use berth_core::Digest;

use crate::content::unique_name;
use crate::records::Records;
use crate::snapshot;

/// Content that pulls in progress hold, counted per pull.
#[derive(Debug, Default)]
pub struct Leases {
    pub blobs: HashMap<Digest, usize>,
    pub snapshots: HashMap<Digest, usize>,
}

impl Leases {
    pub fn acquire(&mut self, blobs: &[Digest], snapshots: &[Digest]) {
        for b in blobs {
            *self.blobs.entry(b.clone()).or_default() += 1;
        }
        for s in snapshots {
            *self.snapshots.entry(s.clone()).or_default() += 1;
        }
    }

    pub fn release(&mut self, blobs: &[Digest], snapshots: &[Digest]) {
        fn dec(map: &mut HashMap<Digest, usize>, k: &Digest) {
            if let Some(n) = map.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    map.remove(k);
                }
            }
        }
        for b in blobs {
            dec(&mut self.blobs, b);
        }
        for s in snapshots {
            dec(&mut self.snapshots, s);
        }
    }
}

/// What to delete: entries on disk (hex names) referenced neither by records nor leases.
/// Names that are not digests (foreign files, `tmp-*` dirs) are left alone.
pub fn garbage(
    records: &Records,
    leases: &Leases,
    blobs_on_disk: &[String],
    snapshots_on_disk: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut live_blobs: HashSet<&str> = leases.blobs.keys().map(Digest::hex).collect();
    let mut live_snaps: HashSet<&str> = leases.snapshots.keys().map(Digest::hex).collect();
    for r in records.by_id.values() {
        live_blobs.extend(r.blobs.iter().map(Digest::hex));
        live_snaps.extend(r.chain_ids.iter().map(Digest::hex));
    }
    let is_digest_hex =
        |n: &str| n.len() == 64 && n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let dead = |names: &[String], live: &HashSet<&str>| {
        names
            .iter()
            .filter(|n| is_digest_hex(n) && !live.contains(n.as_str()))
            .cloned()
            .collect::<Vec<_>>()
    };
    (
        dead(blobs_on_disk, &live_blobs),
        dead(snapshots_on_disk, &live_snaps),
    )
}

pub fn list_names(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Deletes garbage blobs (unlink) and moves garbage snapshots out of sight (rename to
/// `tmp-gc-*`, so they are never half-visible). Call with the store's lock held; returns
/// the renamed dirs for [`purge`] to delete after the lock is released.
pub fn sweep(root: &Path, records: &Records, leases: &Leases) -> Vec<std::path::PathBuf> {
    let blobs_dir = root.join("blobs").join("sha256");
    let snaps_dir = snapshot::snapshots_dir(root);
    let (blobs, snaps) = garbage(
        records,
        leases,
        &list_names(&blobs_dir),
        &list_names(&snaps_dir),
    );
    for b in blobs {
        let p = blobs_dir.join(&b);
        match std::fs::remove_file(&p) {
            Ok(()) => tracing::debug!(blob = %b, "collected blob"),
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "cannot delete unreferenced blob")
            }
        }
    }
    let mut doomed = Vec::new();
    for s in snaps {
        let from = snaps_dir.join(&s);
        let to = snaps_dir.join(unique_name("tmp-gc"));
        match std::fs::rename(&from, &to) {
            Ok(()) => doomed.push(to),
            Err(e) => {
                tracing::warn!(path = %from.display(), error = %e, "cannot delete unreferenced snapshot")
            }
        }
    }
    doomed
}

/// Deletes snapshot trees set aside by [`sweep`]. Slow for big trees: no lock needed.
pub fn purge(dirs: Vec<std::path::PathBuf>) {
    for d in dirs {
        if let Err(e) = std::fs::remove_dir_all(&d) {
            tracing::warn!(path = %d.display(), error = %e, "cannot delete snapshot");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Record;
    use std::collections::BTreeSet;

    fn rec(n: u8, blobs: &[&Digest], chains: &[&Digest]) -> Record {
        Record {
            id: Digest::of(&[n]),
            repo_tags: vec![format!("r/x:{n}")],
            repo_digests: vec![],
            blobs: blobs.iter().map(|d| (*d).clone()).collect::<BTreeSet<_>>(),
            diff_ids: vec![],
            chain_ids: chains.iter().map(|d| (*d).clone()).collect(),
            size: 0,
            user: String::new(),
            config: serde_json::Value::Null,
        }
    }

    #[test]
    fn reference_counting() {
        let (shared, a_only, b_only, leased, stray) = (
            Digest::of(b"shared"),
            Digest::of(b"a"),
            Digest::of(b"b"),
            Digest::of(b"leased"),
            Digest::of(b"stray"),
        );
        let mut rs = Records::default();
        for r in [
            rec(1, &[&shared, &a_only], &[&shared]),
            rec(2, &[&shared, &b_only], &[&shared, &b_only]),
        ] {
            rs.by_id.insert(r.id.clone(), r);
        }
        let mut leases = Leases::default();
        leases.acquire(std::slice::from_ref(&leased), std::slice::from_ref(&leased));
        let disk: Vec<String> = [&shared, &a_only, &b_only, &leased, &stray]
            .iter()
            .map(|d| d.hex().to_string())
            .chain(["tmp-123".to_string(), "notes.txt".to_string()])
            .collect();
        let (b, s) = garbage(&rs, &leases, &disk, &disk);
        assert_eq!(b, vec![stray.hex().to_string()]);
        assert_eq!(s, vec![a_only.hex().to_string(), stray.hex().to_string()]);

        // Dropping image 1 frees what only it used; the shared layer stays.
        rs.by_id.remove(&Digest::of(&[1]));
        let (b, _) = garbage(&rs, &leases, &disk, &disk);
        assert_eq!(b, vec![a_only.hex().to_string(), stray.hex().to_string()]);
        // Releasing the lease frees the leased content too.
        leases.release(std::slice::from_ref(&leased), std::slice::from_ref(&leased));
        rs.by_id.clear();
        let (b, s) = garbage(&rs, &leases, &disk, &disk);
        assert_eq!(b.len(), 5);
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn leases_count() {
        let d = Digest::of(b"x");
        let mut l = Leases::default();
        l.acquire(std::slice::from_ref(&d), &[]);
        l.acquire(std::slice::from_ref(&d), &[]);
        l.release(std::slice::from_ref(&d), &[]);
        assert_eq!(l.blobs.get(&d), Some(&1));
        l.release(std::slice::from_ref(&d), &[]);
        assert!(l.blobs.is_empty());
    }
}
