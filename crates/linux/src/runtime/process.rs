//! The container process' own settings: rlimits, oom_score_adj, session/terminal, user and
//! groups, capabilities, no_new_privs, and finally seccomp + execve.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use oci_spec::runtime::{Capabilities, PosixRlimitType, Process};

use super::error::{InitError, Result, Step, errno_text};
use super::seccomp::{self, Filter};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn prctl(op: libc::c_int, arg: libc::c_ulong) -> std::result::Result<(), Errno> {
    // SAFETY: prctl with integer arguments only (no pointers).
    let rc = unsafe {
        libc::prctl(
            op,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    Errno::result(rc).map(drop)
}

pub fn set_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().iter().flatten() {
        let res = match r.typ() {
            PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
            PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
            PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
            PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
            PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
            PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
            PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
            PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
            PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
            PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
            PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
            PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
            PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
            PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
            PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
            PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
        };
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: lim is a valid rlimit for the duration of the call.
        let rc = unsafe { libc::setrlimit(res, &lim) };
        Errno::result(rc).step(format!(
            "rlimit {:?} soft {} hard {}",
            r.typ(),
            r.soft(),
            r.hard()
        ))?;
    }
    Ok(())
}

/// Writes oom_score_adj. Lowering it below the current value needs CAP_SYS_RESOURCE; when
/// that is refused the value stays where it is and a warning goes to the monitor's log
/// (containerd's restrict_oom_score_adj does the same clamp up front). Never fails the
/// container.
pub fn set_oom_score_adj(value: i32) {
    let file = "/proc/self/oom_score_adj";
    let current: Option<i32> = std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    if current == Some(value) {
        return;
    }
    if let Err(e) = std::fs::write(file, value.to_string()) {
        match current {
            Some(cur) if value < cur => super::warn(format!(
                "oom_score_adj {value} is below the current {cur} and lowering it is not \
                 permitted ({e}): keeping {cur}"
            )),
            _ => super::warn(format!("setting oom_score_adj to {value}: {e}")),
        }
    }
}

/// A session of its own and, with a terminal, stdin's terminal as the controlling one.
pub fn session(terminal: bool) -> Result<()> {
    nix::unistd::setsid().step("setsid")?;
    if terminal {
        // SAFETY: TIOCSCTTY takes an integer argument; fd 0 is ours.
        let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
        Errno::result(rc).step("set the controlling terminal (stdin)")?;
    }
    Ok(())
}

fn cap_set(
    list: &Option<Capabilities>,
    available: &CapsHashSet,
    dropped: &mut Vec<String>,
) -> CapsHashSet {
    let mut out = CapsHashSet::new();
    for c in list.iter().flatten() {
        let name = format!("CAP_{c}");
        match name.parse::<Capability>() {
            Ok(cap) if available.contains(&cap) => {
                out.insert(cap);
            }
            _ => dropped.push(name),
        }
    }
    out
}

/// What [`set_identity`] leaves for the last step before execve.
pub struct Identity {
    /// CAP_SYS_ADMIN is in the permitted set only so seccomp can be loaded without
    /// no_new_privs; dropped right after loading.
    pub drop_admin_after_seccomp: bool,
}

/// Bounding set, user and groups, umask, cwd, capability sets, no_new_privs. Capabilities
/// this kernel or this process' bounding set lacks (e.g. CAP_SYS_RESOURCE where berth runs
/// without it) are left out with a warning to the monitor's log, rather than failing the
/// container.
pub fn set_identity(p: &Process, seccomp: bool) -> Result<Identity> {
    let nnp = p.no_new_privileges().unwrap_or(false);
    let mut keep_admin = false;
    let available = caps::read(None, CapSet::Bounding).step("read the capability bounding set")?;
    let sets = p.capabilities().as_ref().map(|c| {
        let mut dropped = Vec::new();
        let s = (
            cap_set(c.bounding(), &available, &mut dropped),
            cap_set(c.effective(), &available, &mut dropped),
            cap_set(c.permitted(), &available, &mut dropped),
            cap_set(c.inheritable(), &available, &mut dropped),
            cap_set(c.ambient(), &available, &mut dropped),
        );
        let dropped: HashSet<String> = dropped.into_iter().collect();
        if !dropped.is_empty() {
            let mut d: Vec<_> = dropped.into_iter().collect();
            d.sort();
            super::warn(format!(
                "capabilities not available here, left out: {}",
                d.join(" ")
            ));
        }
        s
    });
    if let Some((bounding, ..)) = &sets {
        for cap in available.difference(bounding) {
            caps::drop(None, CapSet::Bounding, *cap)
                .step(format!("drop bounding capability {cap}"))?;
        }
    }
    let user = p.user();
    prctl(libc::PR_SET_KEEPCAPS, 1).step("prctl(PR_SET_KEEPCAPS)")?;
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    setgroups(&gids).step(format!(
        "setgroups {:?}",
        user.additional_gids().clone().unwrap_or_default()
    ))?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).step(format!("setgid {gid}"))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).step(format!("setuid {uid}"))?;
    prctl(libc::PR_SET_KEEPCAPS, 0).step("prctl(PR_SET_KEEPCAPS)")?;
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask & 0o777));
    }
    chdir(p.cwd())?;
    if let Some((_, mut eff, mut perm, inh, amb)) = sets {
        if seccomp && !nnp && !perm.contains(&Capability::CAP_SYS_ADMIN) {
            perm.insert(Capability::CAP_SYS_ADMIN);
            keep_admin = true;
        }
        if keep_admin {
            eff.insert(Capability::CAP_SYS_ADMIN);
        }
        caps::set(None, CapSet::Inheritable, &inh).step("set inheritable capabilities")?;
        caps::set(None, CapSet::Effective, &eff).step("set effective capabilities")?;
        caps::set(None, CapSet::Permitted, &perm).step("set permitted capabilities")?;
        caps::clear(None, CapSet::Ambient).step("clear ambient capabilities")?;
        // Like runc: an ambient capability needs to be permitted and inheritable too; one
        // that cannot be raised is left out with a note, not an error.
        for cap in amb {
            if let Err(e) = caps::raise(None, CapSet::Ambient, cap) {
                super::warn(format!("ambient capability {cap} left out: {e}"));
            }
        }
    } else if seccomp && !nnp && !uid.is_root() {
        // No capability changes asked; a non-root user only kept permitted ones (KEEPCAPS).
        let _ = caps::raise(None, CapSet::Effective, Capability::CAP_SYS_ADMIN);
        keep_admin = true;
    }
    if nnp {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1).step("prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    Ok(Identity {
        drop_admin_after_seccomp: keep_admin,
    })
}

/// chdir to the process' cwd, which must exist (runc fails the same way).
fn chdir(cwd: &Path) -> Result<()> {
    std::env::set_current_dir(cwd).step(format!("chdir {}", cwd.display()))
}

/// The program to run: args[0] as is when it has a slash, else the first executable
/// regular file of that name on the process' PATH.
pub fn resolve(arg0: &str, env: &[String]) -> std::result::Result<PathBuf, Errno> {
    if arg0.contains('/') {
        return Ok(PathBuf::from(arg0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut denied = false;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        let Ok(md) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !md.is_file() {
            continue;
        }
        match nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK) {
            Ok(()) => return Ok(candidate),
            Err(_) => denied = true,
        }
    }
    Err(if denied { Errno::EACCES } else { Errno::ENOENT })
}

/// Default dispositions and an empty signal mask: ignored signals (Rust ignores SIGPIPE)
/// would otherwise stay ignored in the container's program.
fn reset_signals() {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no Rust handler; nothing here relies on the old ones.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

fn cstrings<'a>(what: &str, items: impl Iterator<Item = &'a [u8]>) -> Result<Vec<CString>> {
    items
        .map(|b| CString::new(b).map_err(|_| InitError::new(what, "contains a NUL byte")))
        .collect()
}

/// The home directory of `uid` in /etc/passwd.
fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) && !f[5].is_empty())
            .then(|| f[5].to_string())
    })
}

/// The final step: seccomp (with the CAP_SYS_ADMIN dance), then execve. Returns only on
/// failure, with the message for the monitor.
pub fn exec(p: &Process, filter: Option<&Filter>, identity: &Identity) -> InitError {
    let args = p.args().clone().unwrap_or_default();
    let mut env = p.env().clone().unwrap_or_default();
    // As runc: a process without HOME gets its user's home from the image's /etc/passwd
    // (we are past pivot_root), else "/".
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let uid = nix::unistd::getuid().as_raw();
        env.push(format!(
            "HOME={}",
            home_of(uid).unwrap_or_else(|| "/".into())
        ));
    }
    let Some(arg0) = args.first() else {
        return InitError::new("exec", "process.args is empty");
    };
    let exec_err = |e: Errno| InitError::new(format!("exec {arg0:?}"), errno_text(e));
    let exe = match resolve(arg0, &env) {
        Ok(exe) => exe,
        Err(e) => return exec_err(e),
    };
    let (exe_c, argv, envp) = match (
        CString::new(exe.as_os_str().as_bytes()),
        cstrings("process.args", args.iter().map(|a| a.as_bytes())),
        cstrings("process.env", env.iter().map(|a| a.as_bytes())),
    ) {
        (Ok(x), Ok(a), Ok(e)) => (x, a, e),
        (Err(_), ..) => return InitError::new("exec", "the program path contains a NUL byte"),
        (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    reset_signals();
    if let Some(filter) = filter {
        if let Err(e) = seccomp::load(filter) {
            return e;
        }
        if identity.drop_admin_after_seccomp {
            let _ = caps::drop(None, CapSet::Effective, Capability::CAP_SYS_ADMIN);
            if let Err(e) = caps::drop(None, CapSet::Permitted, Capability::CAP_SYS_ADMIN) {
                return InitError::new("drop CAP_SYS_ADMIN after seccomp", e);
            }
        }
    }
    match nix::unistd::execve(&exe_c, &argv, &envp) {
        Err(e) => exec_err(e),
        Ok(never) => match never {},
    }
}
