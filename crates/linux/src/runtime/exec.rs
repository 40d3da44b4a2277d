//! `berthd init --exec --pid <pid> --process <process.json> [--cgroup <path>] [--bundle
//! <dir>]`: runs one more process in a running container, in all its namespaces and its
//! cgroup, with the process' own user, environment, capabilities and the container's
//! seccomp profile (from the bundle, when given). No start message: it execs at once.
//! With `terminal`, its pty is made in the container and the master sent back first.

use oci_spec::runtime::{LinuxSeccomp, Process, Spec};

use super::cgroup::ContainerCgroup;
use super::error::{InitError, Result, Step};
use super::namespaces;
use super::process;
use super::seccomp;
use super::{EXIT_EXEC_FAILED, EXIT_SETUP_FAILED, arg, enter_init, fail, fork_and_report};

/// Entry point of `init --exec ...` (`args`: the arguments after `init`). Never returns.
pub fn exec_main(args: &[String]) -> ! {
    enter_init();
    let (proc_, seccomp) = match before_fork(args) {
        Ok(v) => v,
        Err(e) => fail(&e, EXIT_SETUP_FAILED),
    };
    if let Err(e) = fork_and_report() {
        fail(&e, EXIT_SETUP_FAILED);
    }
    let setup = || -> Result<_> {
        process::set_rlimits(&proc_)?;
        if let Some(adj) = proc_.oom_score_adj() {
            process::set_oom_score_adj(adj);
        }
        let terminal = proc_.terminal().unwrap_or(false);
        if terminal {
            // The container's /dev/ptmx: the exec entered its mount namespace.
            super::console::setup(&proc_, false)?;
        }
        process::session(terminal)?;
        let filter = seccomp.as_ref().map(seccomp::compile).transpose()?;
        let identity = process::set_identity(&proc_, filter.is_some())?;
        Ok((filter, identity))
    };
    let (filter, identity) = match setup() {
        Ok(v) => v,
        Err(e) => fail(&e, EXIT_SETUP_FAILED),
    };
    let err = process::exec(&proc_, filter.as_ref(), &identity);
    fail(&err, EXIT_EXEC_FAILED)
}

fn before_fork(args: &[String]) -> Result<(Process, Option<LinuxSeccomp>)> {
    let pid: i32 = arg(args, "--pid")
        .ok_or_else(|| InitError::new("arguments", "--pid <container pid> is required"))?
        .parse()
        .step("arguments: --pid")?;
    let file = arg(args, "--process")
        .ok_or_else(|| InitError::new("arguments", "--process <process.json> is required"))?;
    let text = std::fs::read(file).step(format!("read {file}"))?;
    let proc_: Process = serde_json::from_slice(&text).step(format!("parse {file}"))?;
    let seccomp = match arg(args, "--bundle") {
        Some(bundle) => {
            let config = std::path::Path::new(bundle).join("config.json");
            let text = std::fs::read(&config).step(format!("read {}", config.display()))?;
            let spec: Spec =
                serde_json::from_slice(&text).step(format!("parse {}", config.display()))?;
            spec.linux().as_ref().and_then(|l| l.seccomp().clone())
        }
        None => None,
    };
    // The namespaces are looked up before anything changes, the cgroup joined through the
    // host's cgroupfs before the mount namespace changes.
    let nss = namespaces::of_process(pid)?;
    if let Some(path) = arg(args, "--cgroup").filter(|p| !p.is_empty()) {
        ContainerCgroup::locate(path)
            .and_then(|cg| cg.join_self())
            .step("cgroup")?;
    }
    namespaces::enter(&nss)?;
    Ok((proc_, seccomp))
}
