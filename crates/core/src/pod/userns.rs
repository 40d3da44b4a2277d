//! Pod user namespaces (`hostUsers: false`): the uid/gid mappings the kubelet picks for a
//! pod (typically container 0 → host 65536·k, length 65536), checked before anything is
//! created, and the rule that a pod's containers share the pod's mapping.

use serde::{Deserialize, Serialize};

/// One `container_id host_id length` line of /proc/<pid>/uid_map or gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub container_id: u32,
    pub host_id: u32,
    pub length: u32,
}

/// The mappings of a pod's user namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNamespace {
    pub uids: Vec<IdMapping>,
    pub gids: Vec<IdMapping>,
}

/// The kernel takes at most this many lines per map (since Linux 4.15).
pub const MAX_MAPPINGS: usize = 340;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernsError {
    #[error("user namespace {0} mappings are missing (mode POD needs uids and gids)")]
    Missing(&'static str),
    #[error("user namespace {what} mapping {m:?}: {reason}")]
    Bad {
        what: &'static str,
        m: IdMapping,
        reason: &'static str,
    },
    #[error("user namespace {what} mappings {a:?} and {b:?} overlap on the {side} side")]
    Overlap {
        what: &'static str,
        a: IdMapping,
        b: IdMapping,
        side: &'static str,
    },
    #[error("user namespace has {n} {what} mappings; the kernel takes at most {MAX_MAPPINGS}")]
    TooMany { what: &'static str, n: usize },
    /// The pod's root must be someone: containers and the pod's files start as id 0.
    #[error("user namespace {0} mappings do not map container id 0")]
    RootUnmapped(&'static str),
}

fn end(start: u32, len: u32) -> u64 {
    u64::from(start) + u64::from(len)
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    u64::from(a.0) < end(b.0, b.1) && u64::from(b.0) < end(a.0, a.1)
}

fn check(what: &'static str, maps: &[IdMapping]) -> Result<(), UsernsError> {
    if maps.is_empty() {
        return Err(UsernsError::Missing(what));
    }
    if maps.len() > MAX_MAPPINGS {
        return Err(UsernsError::TooMany {
            what,
            n: maps.len(),
        });
    }
    let limit = u64::from(u32::MAX) + 1;
    for m in maps {
        let bad = |reason| UsernsError::Bad {
            what,
            m: *m,
            reason,
        };
        if m.length == 0 {
            return Err(bad("length must be greater than 0"));
        }
        if end(m.container_id, m.length) > limit || end(m.host_id, m.length) > limit {
            return Err(bad("the range goes past id 4294967295"));
        }
    }
    for (i, a) in maps.iter().enumerate() {
        for b in &maps[i + 1..] {
            let side = if overlaps((a.container_id, a.length), (b.container_id, b.length)) {
                "container"
            } else if overlaps((a.host_id, a.length), (b.host_id, b.length)) {
                "host"
            } else {
                continue;
            };
            return Err(UsernsError::Overlap {
                what,
                a: *a,
                b: *b,
                side,
            });
        }
    }
    if host_id(maps, 0).is_none() {
        return Err(UsernsError::RootUnmapped(what));
    }
    Ok(())
}

impl UserNamespace {
    /// The mappings of mode POD, checked: both present, non-empty ranges within 32 bits,
    /// no two ranges overlapping on either side, no more lines than the kernel takes.
    pub fn new(uids: Vec<IdMapping>, gids: Vec<IdMapping>) -> Result<Self, UsernsError> {
        check("uid", &uids)?;
        check("gid", &gids)?;
        Ok(Self { uids, gids })
    }

    /// `/proc/<pid>/uid_map` (or gid_map) text for `maps`.
    pub fn map_text(maps: &[IdMapping]) -> String {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.length))
            .collect()
    }

    /// The host id that container id `id` maps to, if any.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        host_id(&self.uids, id)
    }

    pub fn host_gid(&self, id: u32) -> Option<u32> {
        host_id(&self.gids, id)
    }
}

fn host_id(maps: &[IdMapping], id: u32) -> Option<u32> {
    maps.iter().find_map(|m| {
        let off = id.checked_sub(m.container_id)?;
        (off < m.length).then(|| m.host_id + off)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(container_id: u32, host_id: u32, length: u32) -> IdMapping {
        IdMapping {
            container_id,
            host_id,
            length,
        }
    }

    #[test]
    fn the_kubelets_mapping_is_accepted() {
        let k = 3 * 65536;
        let u = UserNamespace::new(vec![m(0, k, 65536)], vec![m(0, k, 65536)]).unwrap();
        assert_eq!(UserNamespace::map_text(&u.uids), format!("0 {k} 65536\n"));
        assert_eq!(u.host_uid(0), Some(k));
        assert_eq!(u.host_uid(1000), Some(k + 1000));
        assert_eq!(u.host_gid(65536), None);
        // Several disjoint ranges are fine too.
        UserNamespace::new(
            vec![m(0, 100_000, 1000), m(1000, 300_000, 1000)],
            vec![m(0, 100_000, 65536)],
        )
        .unwrap();
    }

    #[test]
    fn container_root_must_be_mapped() {
        let ok = vec![m(0, 65536, 65536)];
        let e = UserNamespace::new(vec![m(1, 65536, 65536)], ok.clone()).unwrap_err();
        assert_eq!(e, UsernsError::RootUnmapped("uid"));
        assert!(e.to_string().contains("container id 0"), "{e}");
        let e = UserNamespace::new(ok, vec![m(1000, 65536, 10)]).unwrap_err();
        assert_eq!(e, UsernsError::RootUnmapped("gid"));
    }

    #[test]
    fn bad_mappings_are_named() {
        let ok = vec![m(0, 65536, 65536)];
        let e = UserNamespace::new(vec![], ok.clone()).unwrap_err();
        assert_eq!(e, UsernsError::Missing("uid"));
        let e = UserNamespace::new(ok.clone(), vec![]).unwrap_err();
        assert!(e.to_string().contains("gid mappings are missing"), "{e}");
        let e = UserNamespace::new(vec![m(0, 65536, 0)], ok.clone()).unwrap_err();
        assert!(e.to_string().contains("length"), "{e}");
        let e = UserNamespace::new(vec![m(0, u32::MAX, 2)], ok.clone()).unwrap_err();
        assert!(e.to_string().contains("4294967295"), "{e}");
        let e = UserNamespace::new(vec![m(0, 65536, 100), m(50, 200_000, 100)], ok.clone())
            .unwrap_err();
        assert!(
            e.to_string().contains("overlap on the container side"),
            "{e}"
        );
        let e =
            UserNamespace::new(ok.clone(), vec![m(0, 65536, 100), m(100, 65600, 100)]).unwrap_err();
        assert!(
            e.to_string().contains("gid") && e.to_string().contains("host side"),
            "{e}"
        );
        let many: Vec<IdMapping> = (0..341).map(|i| m(i, 100_000 + i, 1)).collect();
        let e = UserNamespace::new(many, ok).unwrap_err();
        assert!(e.to_string().contains("at most 340"), "{e}");
    }
}
