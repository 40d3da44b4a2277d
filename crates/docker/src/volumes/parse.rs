//! The syntax of one mount as dockerd reads it: a `Binds` entry, a `HostConfig.Mounts`
//! entry (bind, volume or tmpfs) and a `HostConfig.Tmpfs` entry.

use std::collections::BTreeMap;

use berth_core::container::Propagation;
use bollard_stubs::models::{Mount, MountBindOptionsPropagationEnum, MountType};

use super::driver;
use super::spec::{Planned, Source, clean};
use crate::error::ApiError;

/// dockerd's options for every tmpfs, before the request's own.
const TMPFS_DEFAULTS: [&str; 3] = ["noexec", "nosuid", "nodev"];

fn destination(spec: &str, dst: &str) -> Result<String, ApiError> {
    let d = clean(dst).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"volume\": invalid mount path: '{dst}' mount path must be absolute"
        ))
    })?;
    if d == "/" {
        return Err(ApiError::bad_request(format!(
            "invalid volume specification: '{spec}': invalid mount config: destination can't be '/'"
        )));
    }
    Ok(d)
}

fn is_mode(s: &str) -> bool {
    s.split(',').all(|o| {
        matches!(
            o,
            "ro" | "rw"
                | "z"
                | "Z"
                | "nocopy"
                | "private"
                | "rprivate"
                | "shared"
                | "rshared"
                | "slave"
                | "rslave"
                | "consistent"
                | "cached"
                | "delegated"
        )
    })
}

fn propagation_of(p: &str) -> Propagation {
    match p {
        "shared" | "rshared" => Propagation::Bidirectional,
        "slave" | "rslave" => Propagation::HostToContainer,
        _ => Propagation::Private,
    }
}

/// One `HostConfig.Tmpfs` entry (`--tmpfs /run:size=64m,mode=1777`).
pub fn parse_tmpfs(dst: &str, opts: &str) -> Result<Planned, ApiError> {
    let destination = clean(dst).filter(|d| d != "/").ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid tmpfs mount {dst:?}: the path must be absolute and not /"
        ))
    })?;
    let given: Vec<String> = opts
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    Ok(tmpfs_planned(destination, given))
}

fn tmpfs_planned(destination: String, given: Vec<String>) -> Planned {
    // The last of ro/rw wins, as the mount options are read in order.
    let readonly = given
        .iter()
        .rev()
        .find(|o| *o == "ro" || *o == "rw")
        .map(|o| o == "ro");
    let mode = given.join(",");
    let mut options: Vec<String> = TMPFS_DEFAULTS.iter().map(|s| s.to_string()).collect();
    options.extend(given);
    Planned {
        source: Source::Tmpfs { options },
        destination,
        readonly: readonly.unwrap_or(false),
        propagation: Propagation::Private,
        mode,
    }
}

/// One `Binds` entry.
pub fn parse_bind(spec: &str) -> Result<Planned, ApiError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [d, m] if is_mode(m) && d.starts_with('/') => ("", *d, *m),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid volume specification: '{spec}'"
            )));
        }
    };
    let destination = destination(spec, dst)?;
    let mut readonly = false;
    let mut no_copy = false;
    let mut propagation = Propagation::Private;
    let mut rw_given = 0;
    for o in mode.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => {
                readonly = true;
                rw_given += 1;
            }
            "rw" => rw_given += 1,
            "nocopy" => no_copy = true,
            "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave") => {
                propagation = propagation_of(p)
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid mode: {mode} (in volume specification '{spec}')"
                )));
            }
        }
    }
    if rw_given > 1 {
        return Err(ApiError::bad_request(format!("invalid mode: {mode}")));
    }
    let source = if src.starts_with('/') {
        if no_copy {
            return Err(ApiError::bad_request(format!(
                "invalid mode: {mode}: nocopy applies to volumes only (in '{spec}')"
            )));
        }
        Source::Bind {
            path: clean(src).unwrap_or_else(|| src.to_string()),
            create: true,
        }
    } else {
        if !src.is_empty() {
            super::store::validate_name(src)?;
        }
        Source::Volume {
            name: (!src.is_empty()).then(|| src.to_string()),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            no_copy,
        }
    };
    Ok(Planned {
        source,
        destination,
        readonly,
        propagation,
        mode: mode.to_string(),
    })
}

/// One `HostConfig.Mounts` entry (`--mount`).
pub fn parse_mount(m: &Mount) -> Result<Planned, ApiError> {
    let typ = m.typ.unwrap_or(MountType::VOLUME);
    let bad = |what: String| {
        ApiError::bad_request(format!("invalid mount config for type \"{typ}\": {what}"))
    };
    let target = m.target.clone().unwrap_or_default();
    if target.is_empty() {
        return Err(bad("field Target must not be empty".into()));
    }
    let destination = clean(&target).filter(|d| d != "/").ok_or_else(|| {
        bad(format!(
            "invalid mount path: '{target}' mount path must be absolute"
        ))
    })?;
    let source = m.source.clone().unwrap_or_default();
    let readonly = m.read_only.unwrap_or(false);
    match typ {
        MountType::BIND => {
            if m.volume_options.is_some() {
                return Err(bad("field VolumeOptions must not be specified".into()));
            }
            let path = clean(&source).ok_or_else(|| {
                bad(format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                ))
            })?;
            let propagation = match m.bind_options.as_ref().and_then(|b| b.propagation) {
                Some(
                    MountBindOptionsPropagationEnum::SHARED
                    | MountBindOptionsPropagationEnum::RSHARED,
                ) => Propagation::Bidirectional,
                Some(
                    MountBindOptionsPropagationEnum::SLAVE
                    | MountBindOptionsPropagationEnum::RSLAVE,
                ) => Propagation::HostToContainer,
                _ => Propagation::Private,
            };
            let create = m
                .bind_options
                .as_ref()
                .and_then(|b| b.create_mountpoint)
                .unwrap_or(false);
            Ok(Planned {
                source: Source::Bind { path, create },
                destination,
                readonly,
                propagation,
                mode: String::new(),
            })
        }
        MountType::VOLUME => {
            if m.bind_options.is_some() {
                return Err(bad("field BindOptions must not be specified".into()));
            }
            let opts = m.volume_options.clone().unwrap_or_default();
            let mut options = BTreeMap::new();
            if let Some(d) = &opts.driver_config {
                driver::check_driver(&source, d.name.as_deref().unwrap_or(""))?;
                options = driver::check_options(&source, d.options.iter().flatten())?;
            }
            if opts.subpath.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err(bad("VolumeOptions.Subpath is not supported by berth".into()));
            }
            if !source.is_empty() {
                super::store::validate_name(&source)?;
            }
            Ok(Planned {
                source: Source::Volume {
                    name: (!source.is_empty()).then_some(source),
                    labels: opts.labels.unwrap_or_default().into_iter().collect(),
                    options,
                    no_copy: opts.no_copy.unwrap_or(false),
                },
                destination,
                readonly,
                propagation: Propagation::Private,
                mode: String::new(),
            })
        }
        MountType::TMPFS => {
            if !source.is_empty() {
                return Err(bad("field Source must not be specified".into()));
            }
            if m.bind_options.is_some() || m.volume_options.is_some() {
                return Err(bad("only TmpfsOptions may be specified".into()));
            }
            let t = m.tmpfs_options.clone().unwrap_or_default();
            let mut given = Vec::new();
            if let Some(n) = t.size_bytes.filter(|n| *n > 0) {
                given.push(format!("size={n}"));
            }
            if let Some(mode) = t.mode.filter(|m| *m != 0) {
                given.push(format!("mode={mode:o}"));
            }
            for o in t.options.iter().flatten() {
                match o.as_slice() {
                    [flag] => given.push(flag.clone()),
                    [k, v] => given.push(format!("{k}={v}")),
                    _ => return Err(bad(format!("invalid tmpfs option {o:?}"))),
                }
            }
            let mut p = tmpfs_planned(destination, given);
            p.readonly |= readonly;
            Ok(p)
        }
        other => Err(ApiError::bad_request(format!(
            "invalid mount config for type \"{other}\": berth's Docker API mounts binds, volumes and tmpfs only"
        ))),
    }
}
