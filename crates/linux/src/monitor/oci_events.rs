//! The monitor's side of external OCI runtimes ([`super::oci`]): spawning their create,
//! start and exec commands, and what their exits mean. The processes they set up are then
//! handled like berth's own: reaped by PID, logged, recorded.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Instant;

use berth_core::runtime::StdioConfig;

use super::cgroups;
use super::container::{Container, Phase};
use super::log::LogFile;
use super::oci::{self, Helper, OciCli};
use super::protocol::{ErrorKind, Response};
use super::records::{self, ContainerRecord};
use super::server::Monitor;
use super::sys;

/// How long a runtime may take to create or start a container (as berth's init).
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Monitor {
    /// Runs `<bin> create` for the bundle; the container is ready when it exits 0.
    pub fn spawn_oci_create(
        &mut self,
        id: &str,
        bundle: &Path,
        handler: String,
        bin: String,
        stdio: StdioConfig,
    ) -> Result<Container, String> {
        oci::absolute_cgroups_path(bundle)?;
        let cgroups_path = cgroups::bundle_cgroups_path(bundle)?;
        let dir = records::container_dir(&self.dir, id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let log = LogFile::open(stdio.log_path.clone()).map_err(|e| {
            let p = stdio.log_path.as_deref().unwrap_or(Path::new(""));
            format!("opening log file {}: {e}", p.display())
        })?;
        let cli = OciCli::new(&self.dir, id, &handler, &bin);
        let pid_file = dir.join(oci::PID_FILE);
        let mut c = Container::new(
            ContainerRecord {
                version: 1,
                id: id.to_string(),
                bundle: bundle.to_string_lossy().into_owned(),
                handler,
                runtime: Some(bin),
                stdio: stdio.clone(),
                cgroups_path,
                pid: None,
                pid_start: None,
                created_at: records::now_ns(),
                started_at: None,
                oom_base: None,
            },
            Phase::Creating,
            log,
        );
        // Without a tty the runtime passes its own stdio on to the container; with one,
        // it creates the pty and sends its master back over the console socket.
        let child = if stdio.tty {
            let fds = sys::null_stdio()?;
            let n = self.next_id();
            c.console = Some(oci::console_listener(&self.dir, n)?);
            fds
        } else {
            let pipes =
                sys::child_stdio(stdio.stdin).map_err(|e| format!("creating stdio: {e}"))?;
            c.stdout = Some(pipes.stdout);
            c.stderr = pipes.stderr;
            c.stdin = pipes.stdin;
            pipes.child
        };
        let console = c.console.as_ref().map(|(_, p)| p.as_path());
        let cmd = cli.create(bundle, &pid_file, console, id);
        let pid = match sys::spawn(cmd, child) {
            Ok(pid) => pid,
            Err(e) => {
                remove_console(&mut c);
                return Err(format!("spawning {} create: {e}", cli.bin().display()));
            }
        };
        self.helpers.insert(pid, Helper::Create(id.to_string()));
        c.init_pid = pid;
        c.deadline = Some(Instant::now() + TIMEOUT);
        Ok(c)
    }

    /// Runs `<bin> start`; the container runs when it exits 0.
    pub fn start_oci(&mut self, client: u64, id: &str) -> Option<Response> {
        let Some(c) = self.containers.get_mut(id) else {
            return Some(Response::not_found(id));
        };
        let cli = OciCli::of(&self.dir, &c.rec)?;
        let spawned = sys::null_stdio().and_then(|fds| {
            sys::spawn(cli.start(id), fds)
                .map_err(|e| format!("spawning {} start: {e}", cli.bin().display()))
        });
        match spawned {
            Ok(pid) => {
                self.helpers.insert(pid, Helper::Start(id.to_string()));
                c.phase = Phase::Starting;
                c.pending_start = Some(client);
                c.deadline = Some(Instant::now() + TIMEOUT);
                None
            }
            Err(e) => Some(Response::error(ErrorKind::Failed, e)),
        }
    }

    /// Runs `<bin> exec --detach` for an exec's process file, `stdio` passed on to the
    /// process; returns the command's PID.
    pub fn spawn_oci_exec(
        &mut self,
        cli: &OciCli,
        id: &str,
        process_file: &Path,
        stdio: [OwnedFd; 3],
        console: Option<&Path>,
    ) -> Result<i32, String> {
        let cmd = cli.exec(
            process_file,
            &process_file.with_extension("pid"),
            console,
            id,
        );
        sys::spawn(cmd, stdio).map_err(|e| format!("spawning {} exec: {e}", cli.bin().display()))
    }

    pub fn helper_exited(&mut self, helper: Helper, code: i32) {
        match helper {
            Helper::Create(id) => self.oci_created(&id, code),
            Helper::Start(id) => self.oci_started(&id, code),
            Helper::Exec(n) => self.oci_exec_started(n, code),
        }
    }

    fn oci_created(&mut self, id: &str, code: i32) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        // Its PID may be reused from now on: never signal it.
        c.init_pid = 0;
        let console = c.console.take();
        if let Some((_, path)) = &console {
            let _ = std::fs::remove_file(path);
        }
        if c.phase != Phase::Creating {
            return; // Failed already (timed out).
        }
        let Some(cli) = OciCli::of(&self.dir, &c.rec) else {
            return;
        };
        let pid_file = records::container_dir(&self.dir, id).join(oci::PID_FILE);
        let pid = match code {
            0 => oci::read_pid_file(&pid_file),
            _ => Err(cli.failure("create", &format!("exit status {code}"))),
        };
        let pid = match pid {
            Ok(pid) => pid,
            Err(msg) => return self.fail_create(id, msg),
        };
        c.rec.pid = Some(pid);
        c.rec.pid_start = records::live_start_time(pid);
        if let Some((listener, _)) = console {
            let master = listener
                .accept()
                .and_then(|(conn, _)| sys::recv_fd(&conn))
                .and_then(|fd| {
                    sys::set_nonblocking(&fd)?;
                    Ok(fd)
                });
            match master {
                Ok(fd) => {
                    // Kept open so a container reading its tty blocks instead of seeing EOF.
                    c.stdin = fd.try_clone().ok();
                    c.stdout = Some(fd);
                }
                Err(e) => {
                    let msg = format!("receiving the tty from {}: {e}", cli.bin().display());
                    return self.fail_create(id, msg);
                }
            }
        }
        self.mark_created(id);
        if let Some(code) = self.take_unclaimed(pid) {
            self.container_exited(id, code);
        }
    }

    fn oci_started(&mut self, id: &str, code: i32) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        if c.phase != Phase::Starting {
            return; // The process already exited (started), or the start timed out.
        }
        if code == 0 {
            return self.mark_running(id);
        }
        let msg = match OciCli::of(&self.dir, &c.rec) {
            Some(cli) => cli.failure("start", &format!("exit status {code}")),
            None => format!("start: exit status {code}"),
        };
        c.phase = Phase::Created;
        c.deadline = None;
        if let Some(client) = c.pending_start.take() {
            self.reply(client, &Response::error(ErrorKind::Failed, msg), &[]);
        }
    }

    fn oci_exec_started(&mut self, n: u64, code: i32) {
        let Some(e) = self.execs.get_mut(&n) else {
            return;
        };
        e.init_pid = 0;
        let pid = match (code, &e.oci) {
            (0, _) => oci::read_pid_file(&e.process_file.with_extension("pid")),
            (_, Some(cli)) => Err(cli.failure("exec", &format!("exit status {code}"))),
            (_, None) => Err(format!("exit status {code}")),
        };
        let console = e.console.take();
        if let Some((_, path)) = &console {
            let _ = std::fs::remove_file(path);
        }
        match pid {
            Ok(pid) => {
                e.pid = Some(pid);
                if e.stream {
                    let master =
                        console.map(|(l, _)| l.accept().and_then(|(conn, _)| sys::recv_fd(&conn)));
                    match master.transpose() {
                        Ok(master) => self.exec_stream_started(n, master),
                        Err(err) => {
                            let bin = e.oci.as_ref().map(|c| c.bin().display().to_string());
                            let bin = bin.unwrap_or_default();
                            let msg = format!("receiving the tty from {bin}: {err}");
                            return self.exec_failed(n, msg);
                        }
                    }
                }
                if let Some(code) = self.take_unclaimed(pid) {
                    self.exec_exited(n, code);
                }
            }
            Err(msg) => self.exec_failed(n, msg),
        }
    }
}

fn remove_console(c: &mut Container) {
    if let Some((_, path)) = c.console.take() {
        let _ = std::fs::remove_file(path);
    }
}
