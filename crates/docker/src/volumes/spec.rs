//! What a create request mounts, parsed as dockerd parses it (pure, no filesystem):
//! `HostConfig.Binds` (`/host:/dst[:opts]`, `name:/dst[:opts]`, `/dst`),
//! `HostConfig.Mounts` (Type bind, volume or tmpfs), `HostConfig.Tmpfs`, other containers' mounts
//! (`HostConfig.VolumesFrom`, resolved by the caller), `Config.Volumes` and the image's
//! `Volumes` (anonymous volumes where nothing else is mounted). The syntax of each entry
//! is read in [`super::parse`].

use std::collections::BTreeMap;

use berth_core::container::Propagation;
use berth_core::image::Image;
use bollard_stubs::models::{ContainerCreateBody, HostConfig};

pub use super::parse::{parse_bind, parse_mount, parse_tmpfs};
use crate::error::ApiError;

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path; `create` makes it when missing (Binds do, Mounts refuse).
    Bind { path: String, create: bool },
    /// A volume: by name (made on first use), or a new anonymous one.
    Volume {
        name: Option<String>,
        labels: BTreeMap<String, String>,
        /// The local driver's options for a volume made now (see [`super::driver`]).
        options: BTreeMap<String, String>,
        /// `nocopy`: the image's content at the destination is not copied in.
        no_copy: bool,
    },
    /// Another container's bind or volume (`--volumes-from`), as that one has it.
    Shared(super::MountPoint),
    /// A new tmpfs with these mount options (dockerd's defaults first).
    Tmpfs { options: Vec<String> },
}

/// One mount to give the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub source: Source,
    pub destination: String,
    pub readonly: bool,
    pub propagation: Propagation,
    /// The mode as dockerd shows it in inspect.
    pub mode: String,
}

/// The paths an image declares as volumes (`VOLUME` in a Dockerfile).
pub fn image_volumes(image: &Image) -> Vec<String> {
    image
        .config
        .get("config")
        .and_then(|c| c.get("Volumes"))
        .and_then(|v| v.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every mount of the request, binds and explicit mounts first, then (at the destinations
/// still free) the mounts `from` other containers and anonymous volumes for
/// `Config.Volumes` and `image_volumes`.
pub fn plan(
    body: &ContainerCreateBody,
    host: &HostConfig,
    from: Vec<Planned>,
    image_volumes: &[String],
) -> Result<Vec<Planned>, ApiError> {
    let mut out: Vec<Planned> = Vec::new();
    let push = |p: Planned, out: &mut Vec<Planned>| {
        if out.iter().any(|o| o.destination == p.destination) {
            return Err(ApiError::bad_request(format!(
                "Duplicate mount point: {}",
                p.destination
            )));
        }
        out.push(p);
        Ok(())
    };
    for b in host.binds.iter().flatten() {
        push(parse_bind(b)?, &mut out)?;
    }
    for m in host.mounts.iter().flatten() {
        push(parse_mount(m)?, &mut out)?;
    }
    let mut tmpfs: Vec<_> = host.tmpfs.iter().flatten().collect();
    tmpfs.sort();
    for (dst, opts) in tmpfs {
        push(parse_tmpfs(dst, opts)?, &mut out)?;
    }
    for p in from {
        if !out.iter().any(|o| o.destination == p.destination) {
            out.push(p);
        }
    }
    let declared = body.volumes.iter().flatten().chain(image_volumes);
    for dst in declared {
        let destination = clean(dst).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid volume specification: '{dst}': mount path must be absolute"
            ))
        })?;
        if out.iter().any(|o| o.destination == destination) {
            continue;
        }
        out.push(Planned {
            source: Source::Volume {
                name: None,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                no_copy: false,
            },
            destination,
            readonly: false,
            propagation: Propagation::Private,
            mode: String::new(),
        });
    }
    Ok(out)
}

/// An absolute path cleaned as Go's `filepath.Clean` (no `.`, `..`, `//` or trailing `/`);
/// None when not absolute.
pub fn clean(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// One `VolumesFrom` entry, `container[:ro|rw]`: the container and whether to force
/// read-only (Some(true)), read-write (Some(false)) or keep each mount's mode (None).
pub fn parse_volumes_from(spec: &str) -> Result<(&str, Option<bool>), ApiError> {
    match spec.split_once(':') {
        None => Ok((spec, None)),
        Some((c, "ro")) => Ok((c, Some(true))),
        Some((c, "rw")) => Ok((c, Some(false))),
        Some((_, mode)) => Err(ApiError::bad_request(format!(
            "invalid mode for volumes-from: {mode}"
        ))),
    }
}

/// A mount of another container, for `--volumes-from`.
pub fn shared(point: &super::MountPoint, readonly: Option<bool>) -> Planned {
    let readonly = readonly.unwrap_or(!point.rw);
    let mut point = point.clone();
    point.rw = !readonly;
    Planned {
        destination: point.destination.clone(),
        readonly,
        propagation: Propagation::Private,
        mode: point.mode.clone(),
        source: Source::Shared(point),
    }
}
