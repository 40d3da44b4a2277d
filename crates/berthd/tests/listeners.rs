//! berthd's listeners and lifecycle, driven as a user would: a real berthd process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use berth_api::cri::VersionRequest;

#[tokio::test]
async fn serves_version_status_and_runtime_config() {
    let d = common::start("");
    let mut c = common::runtime_client(d.socket()).await;
    let v = c
        .version(VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.runtime_name, "berth");
    assert_eq!(v.runtime_api_version, "v1");
    let s = c
        .status(berth_api::cri::StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let conds = s.status.unwrap().conditions;
    let ready = |t: &str| conds.iter().find(|c| c.r#type == t).unwrap().status;
    assert!(ready("RuntimeReady"));
    assert!(
        ready("NetworkReady"),
        "the built-in bridge network is ready when nft and netlink work"
    );
    assert!(s.info.contains_key("config"));
    let rc = c
        .runtime_config(berth_api::cri::RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rc.linux.unwrap().cgroup_driver,
        berth_api::cri::CgroupDriver::Cgroupfs as i32
    );
    // A request that names no container is refused, naming the RPC and the field.
    let e = c
        .attach(berth_api::cri::AttachRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("Attach: container_id"),
        "{}",
        e.message()
    );
}

#[test]
fn socket_mode_stale_socket_and_second_instance() {
    let mut d = common::start("");
    let meta = std::fs::metadata(d.socket()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    // A second berthd on the same root refuses, naming the lock.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("--config")
        .arg(&d.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another berthd is already running"), "{err}");
    assert!(
        d.socket().exists(),
        "the loser must not remove the winner's socket"
    );

    // SIGTERM: clean exit, socket removed.
    let st = d.stop();
    assert!(st.success(), "{st:?}");
    assert!(!d.socket().exists());

    // A stale socket file (as after kill -9) is replaced.
    let _stale = std::os::unix::net::UnixListener::bind(d.socket()).unwrap();
    drop(_stale);
    assert!(d.socket().exists());
    d.child = Some(common::spawn(&d.config, &d.dir.path().join("berthd.log")));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if std::os::unix::net::UnixStream::connect(d.socket()).is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", d.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn bad_config_is_a_startup_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(dir.path(), "[runtime]\ncgroup_drvier = \"systemd\"\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cgroup_drvier"), "{err}");
    assert!(
        err.contains("expected") && err.contains("`cgroup_driver`"),
        "allowed keys listed: {err}"
    );
}

#[test]
fn config_default_prints_documented_defaults() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berthd"))
        .args(["config", "default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("socket = \"/run/berth/berth.sock\""));
    assert!(text.contains("max_concurrent_downloads = 3"));
}
