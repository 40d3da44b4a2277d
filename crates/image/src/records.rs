//! The image index: one record per image (keyed by config digest) with its names and the
//! content it needs. Persisted as versioned JSON, written temp → fsync → rename. The name
//! rules (what `find`/`remove` accept, tags moving between images) are pure functions here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use berth_core::image::ImageError;
use berth_core::{Digest, Reference};
use serde::{Deserialize, Serialize};

use crate::content::{io_error, sync_dir, unique_name};

const VERSION: u32 = 1;
pub const INDEX_FILE: &str = "images.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Config digest.
    pub id: Digest,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Every blob the image needs: index(es), manifest, config, layers.
    pub blobs: BTreeSet<Digest>,
    pub diff_ids: Vec<Digest>,
    pub chain_ids: Vec<Digest>,
    pub size: u64,
    pub user: String,
    pub config: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    images: Vec<Record>,
}

/// How a name matched an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// By id (full or prefix): the whole image.
    Id(Digest),
    /// By `name@digest`: the whole image.
    DigestName(Digest),
    /// By `name:tag`: that tag only.
    Tag(Digest, String),
}

impl Match {
    pub fn id(&self) -> &Digest {
        match self {
            Match::Id(d) | Match::DigestName(d) | Match::Tag(d, _) => d,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Records {
    pub by_id: BTreeMap<Digest, Record>,
}

impl Records {
    pub fn load(root: &Path) -> Result<Self, ImageError> {
        let path = root.join(INDEX_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io_error("reading image index", &path, e)),
        };
        let file: IndexFile = serde_json::from_slice(&text).map_err(|e| {
            ImageError::Store(format!("image index {} is malformed: {e}", path.display()))
        })?;
        if file.version != VERSION {
            return Err(ImageError::Store(format!(
                "image index {} has version {}, this berth reads version {VERSION}",
                path.display(),
                file.version
            )));
        }
        Ok(Self {
            by_id: file.images.into_iter().map(|r| (r.id.clone(), r)).collect(),
        })
    }

    pub fn save(&self, root: &Path) -> Result<(), ImageError> {
        let file = IndexFile {
            version: VERSION,
            images: self.by_id.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| ImageError::Store(format!("encoding image index: {e}")))?;
        let tmp = root.join("tmp").join(unique_name("images.json"));
        let dest = root.join(INDEX_FILE);
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &dest)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error("writing image index", &dest, e));
        }
        sync_dir(root)
    }

    /// Resolves a name the way containerd's CRI does: a full `sha256:` id; else a reference
    /// (`busybox`, `host/x:tag`, `name@digest`); else an id prefix (with or without
    /// `sha256:`). An ambiguous prefix is an error; no match is `Ok(None)`.
    pub fn resolve(&self, name: &str) -> Result<Option<Match>, ImageError> {
        let name = name.trim();
        if let Ok(d) = name.parse::<Digest>() {
            if self.by_id.contains_key(&d) {
                return Ok(Some(Match::Id(d)));
            }
            return Ok(None);
        }
        if let Ok(r) = name.parse::<Reference>() {
            if let Some(d) = r.digest() {
                let wanted = r.digested_name(d);
                if let Some(rec) = self
                    .by_id
                    .values()
                    .find(|x| x.repo_digests.contains(&wanted))
                {
                    return Ok(Some(Match::DigestName(rec.id.clone())));
                }
            } else if let Some(tag) = r.tagged_name()
                && let Some(rec) = self.by_id.values().find(|x| x.repo_tags.contains(&tag))
            {
                return Ok(Some(Match::Tag(rec.id.clone(), tag)));
            }
        }
        let prefix = name.strip_prefix("sha256:").unwrap_or(name);
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Ok(None);
        }
        let mut hits = self.by_id.keys().filter(|id| id.hex().starts_with(prefix));
        match (hits.next(), hits.next()) {
            (Some(id), None) => Ok(Some(Match::Id(id.clone()))),
            (Some(_), Some(_)) => Err(ImageError::InvalidArgument(format!(
                "image id prefix {name:?} is ambiguous: it matches several images"
            ))),
            _ => Ok(None),
        }
    }

    /// Records `rec` (merged into an existing record with the same id) under `tags` and
    /// `digests`. A tag held by another image moves here; an image left without any name
    /// is dropped. Returns the ids dropped.
    pub fn insert(&mut self, rec: Record, tags: &[String], digests: &[String]) -> Vec<Digest> {
        let id = rec.id.clone();
        let mut dropped = Vec::new();
        // Only an image that loses its last name here goes: one that never had a name (a
        // build's intermediate image, an untagged commit) stays until it is removed.
        let mut orphans = Vec::new();
        for other in self.by_id.values_mut().filter(|r| r.id != id) {
            let before = other.repo_tags.len();
            other.repo_tags.retain(|t| !tags.contains(t));
            if other.repo_tags.len() < before
                && other.repo_tags.is_empty()
                && other.repo_digests.is_empty()
            {
                orphans.push(other.id.clone());
            }
        }
        for o in orphans {
            self.by_id.remove(&o);
            dropped.push(o);
        }
        let entry = self.by_id.entry(id).or_insert_with(|| Record {
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            blobs: BTreeSet::new(),
            ..rec.clone()
        });
        entry.blobs.extend(rec.blobs);
        for t in tags {
            if !entry.repo_tags.contains(t) {
                entry.repo_tags.push(t.clone());
            }
        }
        for d in digests {
            if !entry.repo_digests.contains(d) {
                entry.repo_digests.push(d.clone());
            }
        }
        entry.repo_tags.sort();
        entry.repo_digests.sort();
        dropped
    }

    /// Adds `tag` to image `id`, moving it from any image that held it. Returns the ids of
    /// images dropped because the tag was their last name.
    pub fn tag(&mut self, id: &Digest, tag: &str) -> Vec<Digest> {
        match self.by_id.get(id) {
            Some(rec) => {
                let rec = rec.clone();
                self.insert(rec, &[tag.to_string()], &[])
            }
            None => Vec::new(),
        }
    }

    /// Applies a removal: an id or digest name drops the image; a tag is untagged and the
    /// image dropped when it has no tag left. Returns whether an image was dropped.
    pub fn remove(&mut self, m: &Match) -> bool {
        match m {
            Match::Id(id) | Match::DigestName(id) => self.by_id.remove(id).is_some(),
            Match::Tag(id, tag) => {
                let Some(rec) = self.by_id.get_mut(id) else {
                    return false;
                };
                rec.repo_tags.retain(|t| t != tag);
                if rec.repo_tags.is_empty() {
                    self.by_id.remove(id);
                    true
                } else {
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: u8, tags: &[&str], digests: &[&str]) -> Record {
        Record {
            id: Digest::of(&[n]),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            blobs: BTreeSet::from([Digest::of(&[n, 1])]),
            diff_ids: vec![],
            chain_ids: vec![],
            size: 1,
            user: String::new(),
            config: serde_json::Value::Null,
        }
    }

    fn records(list: Vec<Record>) -> Records {
        Records {
            by_id: list.into_iter().map(|r| (r.id.clone(), r)).collect(),
        }
    }

    #[test]
    fn lookup_rules() {
        let d = Digest::of(b"manifest");
        let busy = rec(
            1,
            &["docker.io/library/busybox:latest"],
            &[&format!("docker.io/library/busybox@{d}")],
        );
        let other = rec(2, &["127.0.0.1:5000/x:v1"], &[]);
        let (id1, id2) = (busy.id.clone(), other.id.clone());
        let rs = records(vec![busy, other]);
        let tag = |s: &str| Some(Match::Tag(id1.clone(), s.to_string()));
        assert_eq!(
            rs.resolve("busybox").unwrap(),
            tag("docker.io/library/busybox:latest")
        );
        assert_eq!(
            rs.resolve("docker.io/library/busybox:latest").unwrap(),
            tag("docker.io/library/busybox:latest")
        );
        assert_eq!(rs.resolve("busybox:1.0").unwrap(), None);
        assert_eq!(
            rs.resolve(&format!("busybox@{d}")).unwrap(),
            Some(Match::DigestName(id1.clone()))
        );
        assert_eq!(
            rs.resolve(&format!("busybox:latest@{d}")).unwrap(),
            Some(Match::DigestName(id1.clone()))
        );
        assert_eq!(
            rs.resolve(&id1.to_string()).unwrap(),
            Some(Match::Id(id1.clone()))
        );
        assert_eq!(rs.resolve(id1.hex()).unwrap(), Some(Match::Id(id1.clone())));
        assert_eq!(
            rs.resolve(&id2.hex()[..12]).unwrap(),
            Some(Match::Id(id2.clone()))
        );
        assert_eq!(
            rs.resolve(&format!("sha256:{}", &id2.hex()[..5])).unwrap(),
            Some(Match::Id(id2.clone()))
        );
        assert_eq!(
            rs.resolve("127.0.0.1:5000/x:v1").unwrap(),
            Some(Match::Tag(id2.clone(), "127.0.0.1:5000/x:v1".into()))
        );
        assert_eq!(rs.resolve(&Digest::of(b"zzz").to_string()).unwrap(), None);
        assert_eq!(rs.resolve("UPPER").unwrap(), None);
        assert_eq!(rs.resolve("").unwrap(), None);
        // Every hex id starts with "" -> the empty prefix is not a match; one hex digit
        // common to both ids is ambiguous.
        let common = (0..16u8)
            .map(|i| format!("{i:x}"))
            .find(|p| id1.hex().starts_with(p.as_str()) && id2.hex().starts_with(p.as_str()));
        if let Some(p) = common {
            assert!(rs.resolve(&p).is_err());
        }
    }

    #[test]
    fn tags_move_and_orphans_go() {
        let mut rs = records(vec![
            rec(1, &["r/a:latest"], &[]),
            rec(2, &["r/b:latest", "r/c:1"], &["r/b@x"]),
        ]);
        let new = rec(3, &[], &[]);
        let dropped = rs.insert(
            new.clone(),
            &["r/a:latest".into(), "r/c:1".into()],
            &["r/a@y".into()],
        );
        assert_eq!(dropped, vec![Digest::of(&[1])]);
        let b = &rs.by_id[&Digest::of(&[2])];
        assert_eq!(b.repo_tags, vec!["r/b:latest"]);
        let n = &rs.by_id[&new.id];
        assert_eq!(n.repo_tags, vec!["r/a:latest", "r/c:1"]);
        assert_eq!(n.repo_digests, vec!["r/a@y"]);
        // Re-inserting merges names and blobs.
        let mut again = rec(3, &[], &[]);
        again.blobs.insert(Digest::of(b"extra"));
        rs.insert(again, &["r/d:2".into()], &["r/a@y".into()]);
        let n = &rs.by_id[&new.id];
        assert_eq!(n.repo_tags.len(), 3);
        assert_eq!(n.repo_digests.len(), 1);
        assert_eq!(n.blobs.len(), 2);
    }

    #[test]
    fn tagging_moves_the_tag_and_drops_orphans() {
        let mut rs = records(vec![rec(1, &["r/a:1"], &[]), rec(2, &["r/b:1"], &[])]);
        let (id1, id2) = (Digest::of(&[1]), Digest::of(&[2]));
        assert!(rs.tag(&id1, "r/c:2").is_empty());
        assert_eq!(rs.by_id[&id1].repo_tags, vec!["r/a:1", "r/c:2"]);
        // r/b:1 was image 2's only name: the tag moves and image 2 goes.
        assert_eq!(rs.tag(&id1, "r/b:1"), vec![id2.clone()]);
        assert!(!rs.by_id.contains_key(&id2));
        assert_eq!(rs.by_id[&id1].repo_tags.len(), 3);
        assert_eq!(rs.by_id[&id1].blobs.len(), 1, "blobs kept as they were");
        // Tagging again is a no-op; an unknown id changes nothing.
        assert!(rs.tag(&id1, "r/b:1").is_empty());
        assert!(rs.tag(&Digest::of(b"none"), "r/x:1").is_empty());
    }

    #[test]
    fn removal_rules() {
        let mut rs = records(vec![rec(1, &["r/a:1", "r/a:2"], &["r/a@d"])]);
        let id = Digest::of(&[1]);
        assert!(!rs.remove(&Match::Tag(id.clone(), "r/a:1".into())));
        assert!(rs.remove(&Match::Tag(id.clone(), "r/a:2".into())));
        assert!(rs.by_id.is_empty());
        let mut rs = records(vec![rec(1, &["r/a:1"], &["r/a@d"])]);
        assert!(rs.remove(&Match::DigestName(id.clone())));
        let mut rs = records(vec![rec(1, &["r/a:1"], &[])]);
        assert!(rs.remove(&Match::Id(id.clone())));
        assert!(!rs.remove(&Match::Id(id)));
    }

    #[test]
    fn persists_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        assert!(Records::load(dir.path()).unwrap().by_id.is_empty());
        let rs = records(vec![rec(1, &["r/a:1"], &[]), rec(2, &[], &["r/b@d"])]);
        rs.save(dir.path()).unwrap();
        assert_eq!(Records::load(dir.path()).unwrap(), rs);
        std::fs::write(dir.path().join(INDEX_FILE), b"{oops").unwrap();
        assert!(Records::load(dir.path()).is_err());
        std::fs::write(
            dir.path().join(INDEX_FILE),
            br#"{"version":99,"images":[]}"#,
        )
        .unwrap();
        assert!(
            Records::load(dir.path())
                .unwrap_err()
                .to_string()
                .contains("version 99")
        );
    }
}
