//! A container's mounts at create: the planned binds and volumes become the engine's bind
//! mounts (a volume is a bind of its `_data`), volumes named on first use are created, and
//! the records kept with the container say which volumes it holds. After the engine made
//! the container, new volumes get the image's content (copy-up); if anything fails, the
//! anonymous volumes made for it go again. `--volumes-from` shares another container's. `rm -v` removes a container's anonymous volumes.

use std::path::{Path, PathBuf};

use berth_core::container::{Mount, Propagation};

use bollard_stubs::models::HostConfig;

use super::spec::{Planned, Source};
use super::{KIND_BIND, KIND_TMPFS, KIND_VOLUME, MountPoint, store::Store};
use crate::DockerApi;
use crate::error::ApiError;

/// The mounts of one container being created.
#[derive(Debug, Default)]
pub struct Attached {
    /// For the engine.
    pub mounts: Vec<Mount>,
    /// For the container's stored request (and inspect).
    pub points: Vec<MountPoint>,
    /// Anonymous volumes made for this container (removed if its creation fails).
    pub created: Vec<String>,
    /// (destination, volume data dir) to fill from the image.
    copy: Vec<(String, PathBuf)>,
}

fn propagation_name(p: Propagation) -> &'static str {
    match p {
        Propagation::Private => "rprivate",
        Propagation::HostToContainer => "rslave",
        Propagation::Bidirectional => "rshared",
    }
}

/// Makes what the plan needs: bind sources (for Binds, as dockerd), volumes. The caller
/// holds the volume lock until the container's record is written.
pub fn attach(store: &Store, plan: Vec<Planned>) -> Result<Attached, ApiError> {
    let mut out = Attached::default();
    let res = attach_into(store, plan, &mut out);
    if let Err(e) = res {
        discard(store, &out.created);
        return Err(e);
    }
    Ok(out)
}

fn attach_into(store: &Store, plan: Vec<Planned>, out: &mut Attached) -> Result<(), ApiError> {
    for p in plan {
        let (kind, name, host_path, named) = match p.source {
            Source::Bind { path, create } => {
                let exists = Path::new(&path).exists();
                if !exists && create {
                    std::fs::create_dir_all(&path).map_err(|e| {
                        ApiError::internal(format!("creating the bind source {path}: {e}"))
                    })?;
                } else if !exists {
                    return Err(ApiError::bad_request(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {path}"
                    )));
                }
                (KIND_BIND, String::new(), path, false)
            }
            Source::Volume {
                name,
                labels,
                options,
                no_copy,
            } => {
                let named = name.is_some();
                let name = name.unwrap_or_else(super::store::anonymous_name);
                let (vol, made) = store.create(&name, labels, options)?;
                if made && !named {
                    out.created.push(name.clone());
                }
                let source = super::driver::mount_source(&vol.meta, &vol.data);
                if !source.is_dir() {
                    return Err(ApiError::bad_request(format!(
                        "volume {name}: its device {} is not a directory on this host",
                        source.display()
                    )));
                }
                if !no_copy {
                    out.copy.push((p.destination.clone(), source.clone()));
                }
                (KIND_VOLUME, name, source.display().to_string(), named)
            }
            Source::Shared(point) => {
                if point.kind == KIND_VOLUME && store.get(&point.name).is_none() {
                    return Err(ApiError::not_found(format!(
                        "get {}: no such volume",
                        point.name
                    )));
                }
                let kind = if point.kind == KIND_VOLUME {
                    KIND_VOLUME
                } else {
                    KIND_BIND
                };
                (kind, point.name, point.source, point.named)
            }
            Source::Tmpfs { options } => {
                out.mounts.push(Mount {
                    container_path: p.destination.clone(),
                    host_path: String::new(),
                    readonly: p.readonly,
                    propagation: p.propagation,
                    recursive_read_only: false,
                    tmpfs: Some(options),
                });
                out.points.push(MountPoint {
                    kind: KIND_TMPFS.to_string(),
                    destination: p.destination,
                    rw: !p.readonly,
                    mode: p.mode,
                    ..Default::default()
                });
                continue;
            }
        };
        out.mounts.push(Mount {
            container_path: p.destination.clone(),
            host_path: host_path.clone(),
            readonly: p.readonly,
            propagation: p.propagation,
            recursive_read_only: false,
            tmpfs: None,
        });
        out.points.push(MountPoint {
            kind: kind.to_string(),
            name,
            source: host_path,
            destination: p.destination,
            rw: !p.readonly,
            mode: p.mode,
            propagation: if kind == KIND_BIND {
                propagation_name(p.propagation).to_string()
            } else {
                String::new()
            },
            named,
        });
    }
    Ok(())
}

/// The mounts of the containers named in `HostConfig.VolumesFrom`.
pub fn volumes_from(api: &DockerApi, host: &HostConfig) -> Result<Vec<Planned>, ApiError> {
    let mut out = Vec::new();
    for spec in host.volumes_from.iter().flatten() {
        let (key, readonly) = super::spec::parse_volumes_from(spec)?;
        let rec = crate::containers::find(api, key)?;
        // Its binds and volumes; a tmpfs is the container's own.
        for m in crate::containers::stored(api, &rec).mounts {
            if m.kind != KIND_TMPFS {
                out.push(super::spec::shared(&m, readonly));
            }
        }
    }
    Ok(out)
}

/// Fills the container's new, empty volumes from its rootfs (see [`super::copy_up`]), on a
/// blocking thread (an image directory may be large).
pub async fn copy_up(attached: &Attached, rootfs: PathBuf) -> Result<(), ApiError> {
    let copy = attached.copy.clone();
    if copy.is_empty() {
        return Ok(());
    }
    let work = move || {
        for (dest, data) in &copy {
            super::copy_up::copy_up(&rootfs, dest, data).map_err(|e| {
                ApiError::internal(format!(
                    "copying the image's content at {dest} into its volume {}: {e}",
                    data.display()
                ))
            })?;
        }
        Ok(())
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("copying image content into volumes: {e}")))?
}

/// Removes volumes made for a container whose creation failed.
pub fn discard(store: &Store, created: &[String]) {
    for name in created {
        if let Err(e) = store.remove(name) {
            tracing::warn!(volume = %name, error = %e, "removing a volume made for a container that was not created");
        }
    }
}
