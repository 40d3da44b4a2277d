//! Starting a real berthd on temp dirs, for the listener tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_api::cri::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub config: PathBuf,
}

impl Daemon {
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/berth.sock")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }
}

pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = format!(
        "root_dir = \"{root}/root\"\nrun_dir = \"{root}/run\"\n[grpc]\nsocket = \"{root}/run/berth.sock\"\nshutdown_grace_secs = 2\n[docker]\nsocket = \"{root}/run/docker.sock\"\n[image]\nauth_file = \"\"\n{extra}\n",
        root = dir.display()
    );
    let path = dir.join("berth.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

pub fn spawn(config: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

pub fn start(extra: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), extra);
    let child = spawn(&config, &dir.path().join("berthd.log"));
    let d = Daemon {
        dir,
        child: Some(child),
        config,
    };
    wait_for(&d.socket(), &d);
    d
}

pub fn wait_for(socket: &Path, d: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "berthd did not come up:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Daemon {
    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- berthd log ---\n{}", self.log());
        }
    }
}

pub async fn unix_channel(socket: PathBuf) -> Channel {
    Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap()
}

pub async fn runtime_client(socket: PathBuf) -> RuntimeServiceClient<Channel> {
    RuntimeServiceClient::new(unix_channel(socket).await)
}
