//! Where a pod's cgroup goes, for the cgroupfs and systemd drivers (pure path logic).

use crate::config::CgroupDriver;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CgroupPathError {
    #[error("cgroup_parent {0:?} is not a valid {1} cgroup parent: {2}")]
    Invalid(String, &'static str, &'static str),
}

/// The pod cgroup path below the cgroup root (no leading '/'), for `parent` as the kubelet
/// sends it. cgroupfs: `/kubepods/besteffort/pod<uid>` → `kubepods/besteffort/pod<uid>/berth-<id>`.
/// systemd: `kubepods-besteffort-pod<uid>.slice` expands to its slice path
/// `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice` and the pod gets
/// `berth-<id>.scope` below it. An empty parent puts pods under `berth` (`berth.slice`).
pub fn pod_cgroup(
    driver: CgroupDriver,
    parent: &str,
    pod_id: &str,
) -> Result<String, CgroupPathError> {
    let short = &pod_id[..pod_id.len().min(12)];
    match driver {
        CgroupDriver::Cgroupfs => {
            let parent = if parent.is_empty() { "/berth" } else { parent };
            if !parent.starts_with('/') {
                return Err(CgroupPathError::Invalid(
                    parent.into(),
                    "cgroupfs",
                    "it must be an absolute path",
                ));
            }
            if parent.split('/').any(|c| c == ".." || c == ".") {
                return Err(CgroupPathError::Invalid(
                    parent.into(),
                    "cgroupfs",
                    "it must not contain '.' or '..'",
                ));
            }
            let trimmed = parent.trim_matches('/');
            Ok(if trimmed.is_empty() {
                format!("berth-{short}")
            } else {
                format!("{trimmed}/berth-{short}")
            })
        }
        CgroupDriver::Systemd => {
            let parent = if parent.is_empty() {
                "berth.slice"
            } else {
                parent
            };
            let slice = expand_slice(parent)?;
            Ok(format!("{slice}/berth-{short}.scope"))
        }
    }
}

/// `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Result<String, CgroupPathError> {
    let bad = |why| CgroupPathError::Invalid(slice.into(), "systemd", why);
    let name = slice
        .strip_suffix(".slice")
        .ok_or_else(|| bad("a systemd slice name ends in .slice"))?;
    if name == "-" {
        return Ok(String::new());
    }
    if name.is_empty()
        || name.contains('/')
        || name.starts_with('-')
        || name.ends_with('-')
        || name.contains("--")
    {
        return Err(bad("slice names are dash-separated words without '/'"));
    }
    let mut path = Vec::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroupfs_paths() {
        let id = "0123456789abcdef";
        assert_eq!(
            pod_cgroup(CgroupDriver::Cgroupfs, "/kubepods/besteffort/podx", id).unwrap(),
            "kubepods/besteffort/podx/berth-0123456789ab"
        );
        assert_eq!(
            pod_cgroup(CgroupDriver::Cgroupfs, "", id).unwrap(),
            "berth/berth-0123456789ab"
        );
        assert!(pod_cgroup(CgroupDriver::Cgroupfs, "rel", id).is_err());
        assert!(pod_cgroup(CgroupDriver::Cgroupfs, "/a/../b", id).is_err());
    }

    #[test]
    fn systemd_paths() {
        assert_eq!(
            expand_slice("kubepods-besteffort-pod12.slice").unwrap(),
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice"
        );
        assert_eq!(
            pod_cgroup(CgroupDriver::Systemd, "kubepods.slice", "abc").unwrap(),
            "kubepods.slice/berth-abc.scope"
        );
        assert!(expand_slice("kubepods").is_err());
        assert!(expand_slice("a--b.slice").is_err());
    }
}
