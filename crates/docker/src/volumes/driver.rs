//! The `local` driver, the only one served. Its volumes are directories under berth's root;
//! of dockerd's driver options (`type`, `device`, `o`, handed to mount(2)) the bind form
//! compose files use for a volume kept elsewhere (`type=none, o=bind, device=/path`) is
//! served, by binding the device into the containers directly: what they see is the same
//! as dockerd mounting it on `_data` first. Other filesystems (`type=tmpfs`, nfs…) are
//! refused with a clear error rather than ignored; for a tmpfs, a tmpfs mount does it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::store::Meta;
use crate::error::ApiError;

/// Only `local` (or none) is served; others are an unknown plugin, as with dockerd.
pub fn check_driver(name: &str, driver: &str) -> Result<(), ApiError> {
    match driver {
        "" | super::DRIVER => Ok(()),
        other => Err(ApiError::not_found(format!(
            "create {name}: error looking up volume plugin {other}: plugin \"{other}\" not found"
        ))),
    }
}

/// The driver options of a volume being created, checked; as kept in its metadata.
pub fn check_options<'a>(
    name: &str,
    opts: impl Iterator<Item = (&'a String, &'a String)>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let opts: BTreeMap<String, String> = opts.map(|(k, v)| (k.clone(), v.clone())).collect();
    if opts.is_empty() {
        return Ok(opts);
    }
    let bad = |why: String| ApiError::bad_request(format!("create {name}: {why}"));
    if let Some(k) = opts
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "device" | "o"))
    {
        return Err(bad(format!("invalid option key: {k:?}")));
    }
    let typ = opts.get("type").map(String::as_str).unwrap_or("");
    let o: Vec<&str> = opts
        .get("o")
        .map(|o| o.split(',').filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    let device = opts.get("device").map(String::as_str).unwrap_or("");
    let is_bind = o.iter().any(|x| matches!(*x, "bind" | "rbind"));
    if !matches!(typ, "" | "none") || !is_bind {
        return Err(bad(format!(
            "the local driver here serves plain volumes and binds (type=none, o=bind, device=/path), not type={typ:?} o={:?}; for a tmpfs use a tmpfs mount (--tmpfs or --mount type=tmpfs)",
            o.join(",")
        )));
    }
    if let Some(x) = o.iter().find(|x| !matches!(**x, "bind" | "rbind")) {
        return Err(bad(format!(
            "mount option {x:?} is not supported with o=bind (give ro on the container's mount instead)"
        )));
    }
    if !device.starts_with('/') {
        return Err(bad(format!(
            "device {device:?} must be an absolute host path for o=bind"
        )));
    }
    Ok(opts)
}

/// What containers mount for the volume: the bind's device, else the data directory.
pub fn mount_source(meta: &Meta, data: &std::path::Path) -> PathBuf {
    match meta.options.get("device") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => data.to_path_buf(),
    }
}
