//! Writing sysctls inside a pod's namespaces. /proc/sys resolves net.*, IPC and UTS keys
//! against the namespaces of the *calling thread* (not the process), so a dedicated thread
//! setns()es into the pinned namespaces and writes the files itself; the thread then exits.
//! The tests check that the node's values do not change.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::Path;

use berth_core::pod::ports::PodError;
use berth_core::pod::record::PodNamespaces;
use berth_core::pod::sysctl::SysctlNs;
use nix::sched::{CloneFlags, setns};

/// Blocking; call it on a thread that exits afterwards.
pub(crate) fn apply(
    ns: &PodNamespaces,
    sysctls: &[(String, SysctlNs, String)],
) -> Result<(), PodError> {
    for kind in [SysctlNs::Net, SysctlNs::Ipc, SysctlNs::Uts] {
        let mine: Vec<_> = sysctls.iter().filter(|(_, k, _)| *k == kind).collect();
        if mine.is_empty() {
            continue;
        }
        let (pin, flag, what) = match kind {
            SysctlNs::Net => (&ns.net, CloneFlags::CLONE_NEWNET, "network"),
            SysctlNs::Ipc => (&ns.ipc, CloneFlags::CLONE_NEWIPC, "IPC"),
            SysctlNs::Uts => (&ns.uts, CloneFlags::CLONE_NEWUTS, "UTS"),
        };
        let Some(pin) = pin else {
            return Err(PodError::InvalidArgument(format!(
                "sysctl {} needs a pod-level {what} namespace, which this pod does not have",
                mine[0].0
            )));
        };
        enter(pin, flag)?;
        for (key, _, value) in mine {
            write_one(key, value)?;
        }
    }
    Ok(())
}

fn enter(pin: &Path, flag: CloneFlags) -> Result<(), PodError> {
    let step = "enter pod namespace";
    let f =
        File::open(pin).map_err(|e| PodError::failed(step, format!("{}: {e}", pin.display())))?;
    setns(&f, flag).map_err(|e| PodError::failed(step, format!("setns {}: {e}", pin.display())))
}

fn write_one(key: &str, value: &str) -> Result<(), PodError> {
    // Keys arrive validated (no '/', no ".."), so this stays below /proc/sys.
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let mut f = match File::options().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(PodError::InvalidArgument(format!(
                "sysctl {key} is not known to this kernel"
            )));
        }
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            return Err(PodError::InvalidArgument(format!(
                "sysctl {key} is a group of sysctls, not one"
            )));
        }
        Err(e) => return Err(PodError::failed("set sysctl", format!("{path}: {e}"))),
    };
    // One write() call: /proc/sys parses each write separately.
    match f.write(value.as_bytes()) {
        Ok(n) if n == value.len() => Ok(()),
        Ok(n) => Err(PodError::failed(
            "set sysctl",
            format!("{key}: short write ({n} of {} bytes)", value.len()),
        )),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ERANGE)) => {
            Err(PodError::InvalidArgument(format!(
                "sysctl {key}: the kernel rejects value {value:?}: {e}"
            )))
        }
        Err(e) => Err(PodError::failed(
            "set sysctl",
            format!("{key}={value:?}: {e}"),
        )),
    }
}
