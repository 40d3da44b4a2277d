//! Whole-spec tests of [`build`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, LinuxNamespaceType, Spec};

use super::*;
use crate::pod::record::{DnsConfig, NamespaceModes, PodNamespaces, PodState, RECORD_VERSION};

fn pod() -> PodRecord {
    PodRecord {
        version: RECORD_VERSION,
        id: "podid0123456789".into(),
        name: "web".into(),
        namespace: "default".into(),
        uid: "uid-1".into(),
        attempt: 0,
        state: PodState::Ready,
        created_at: 0,
        hostname: "web-0".into(),
        log_directory: String::new(),
        runtime_handler: String::new(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        modes: NamespaceModes {
            network: NamespaceMode::Pod,
            pid: NamespaceMode::Container,
            ipc: NamespaceMode::Pod,
        },
        namespaces: PodNamespaces {
            net: Some("/run/berth/pods/p/ns/net".into()),
            ipc: Some("/run/berth/pods/p/ns/ipc".into()),
            uts: Some("/run/berth/pods/p/ns/uts".into()),
            user: None,
            init_pid: None,
            init_start_time: None,
        },
        port_mappings: vec![],
        dns: DnsConfig::default(),
        sysctls: BTreeMap::new(),
        cgroup: Some("kubepods/podx/berth-podid012345".into()),
        dir: PathBuf::from("/run/berth/pods/p"),
        ip: None,
        additional_ips: vec![],
        config: serde_json::Value::Null,
        userns: None,
        net: Default::default(),
        attachments: vec![],
    }
}

fn image() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/bin/app".into()],
        cmd: vec!["--serve".into()],
        env: vec!["PATH=/usr/bin:/bin".into(), "APP=1".into()],
        working_dir: "/srv".into(),
        user: "app".into(),
        stop_signal: Some("SIGTERM".into()),
    }
}

const PASSWD: &str = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\napp:x:1000:\nvideo:x:44:app\n";

fn run(config: &ContainerConfig, pod: &PodRecord, pod_privileged: bool) -> Result<Spec, SpecError> {
    let image = image();
    let input = ContainerInput {
        id: "c0ffee0123456789abcdef",
        config,
        pod,
        pod_privileged,
        image: &image,
        image_name: "docker.io/library/app:1",
        passwd: Some(PASSWD),
        group: Some(GROUP),
        rootfs: Path::new("rootfs"),
        cgroup_driver: CgroupDriver::Cgroupfs,
        cgroups: CgroupCaps {
            version: CgroupVersion::V2,
            swap: true,
            hugetlb: true,
        },
        node_hostname: "node1",
        pids_limit: Some(1024),
        device_nodes: &[],
        host_devices: &[DeviceNode {
            path: "/dev/sda".into(),
            kind: DeviceKind::Block,
            major: 8,
            minor: 0,
            file_mode: 0o660,
            uid: 0,
            gid: 6,
        }],
        seccomp_localhost: None,
        host_caps: None,
    };
    build(&input)
}

fn config() -> ContainerConfig {
    ContainerConfig {
        name: "app".into(),
        envs: vec![("APP".into(), "2".into())],
        ..Default::default()
    }
}

#[test]
fn default_container_spec() {
    let spec = run(&config(), &pod(), false).unwrap();
    assert_eq!(spec.version(), OCI_VERSION);
    assert_eq!(spec.hostname().as_deref(), Some("web-0"));
    let p = spec.process().as_ref().unwrap();
    assert_eq!(
        p.args().as_ref().unwrap(),
        &vec!["/bin/app".to_string(), "--serve".into()]
    );
    assert_eq!(
        p.env().as_ref().unwrap(),
        &vec![
            "PATH=/usr/bin:/bin".to_string(),
            "HOSTNAME=web-0".into(),
            "APP=2".into()
        ]
    );
    assert_eq!(p.cwd(), Path::new("/srv"));
    assert_eq!(p.terminal(), Some(false));
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
    assert_eq!(
        p.user().additional_gids().as_ref().unwrap(),
        &vec![44, 1000]
    );
    assert!(p.rlimits().is_none());
    assert_eq!(p.no_new_privileges(), Some(false));
    assert_eq!(p.oom_score_adj(), Some(0));
    let caps = p
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .as_ref()
        .unwrap();
    assert_eq!(caps.len(), 14);
    assert!(!caps.contains(&Capability::SysAdmin));

    let root = spec.root().as_ref().unwrap();
    assert_eq!(
        (root.path().as_path(), root.readonly()),
        (Path::new("rootfs"), Some(false))
    );

    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new("/kubepods/podx/berth-podid012345/c0ffee012345"))
    );
    assert!(linux.seccomp().is_none(), "no profile given: unconfined");
    assert!(
        linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/keys".to_string())
    );
    assert!(
        linux
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string())
    );
    let ns = linux.namespaces().as_ref().unwrap();
    assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup));
    assert!(linux.devices().as_ref().unwrap().is_empty());
    let res = linux.resources().as_ref().unwrap();
    assert_eq!(res.pids().map(|p| p.limit()), Some(1024));
    assert!(!res.devices().as_ref().unwrap()[0].allow());

    let ann = spec.annotations().as_ref().unwrap();
    assert_eq!(ann[annotations::CONTAINER_TYPE], "container");
    assert_eq!(ann[annotations::SANDBOX_ID], "podid0123456789");
    assert_eq!(ann[annotations::CONTAINER_NAME], "app");
    assert_eq!(ann[annotations::IMAGE_NAME], "docker.io/library/app:1");
}

#[test]
fn spec_round_trips_through_json() {
    let mut c = config();
    c.security.seccomp = Some(SeccompProfile::RuntimeDefault);
    let spec = run(&c, &pod(), false).unwrap();
    let json = serde_json::to_string(&spec).unwrap();
    assert!(json.contains("\"ociVersion\":\"1.1.0\""));
    assert!(json.contains("SCMP_ACT_ERRNO"));
    let back: Spec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn privileged_container() {
    let mut c = config();
    c.security.privileged = true;
    c.security.seccomp = Some(SeccompProfile::RuntimeDefault);
    let e = run(&c, &pod(), false).unwrap_err();
    assert!(e.to_string().contains("app"), "{e}");
    let spec = run(&c, &pod(), true).unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert!(linux.readonly_paths().as_ref().unwrap().is_empty());
    assert!(linux.seccomp().is_none());
    let rules = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert!(rules[0].allow());
    assert_eq!(linux.devices().as_ref().unwrap().len(), 1);
    let ns = linux.namespaces().as_ref().unwrap();
    assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup));
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap();
    assert!(
        caps.effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin)
    );
    let sys = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .unwrap();
    assert!(sys.options().as_ref().unwrap().contains(&"rw".to_string()));
}

#[test]
fn host_network_pod_has_no_hostname_or_net_ns() {
    let mut p = pod();
    p.modes.network = NamespaceMode::Node;
    p.namespaces.net = None;
    p.namespaces.uts = None;
    p.hostname = String::new();
    let spec = run(&config(), &p, false).unwrap();
    assert_eq!(spec.hostname(), &None);
    let env = spec.process().as_ref().unwrap().env().clone().unwrap();
    assert!(env.contains(&"HOSTNAME=node1".to_string()));
    let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    assert!(!ns.iter().any(|n| matches!(
        n.typ(),
        LinuxNamespaceType::Network | LinuxNamespaceType::Uts
    )));
}

#[test]
fn readonly_rootfs_tty_and_security_options() {
    let mut c = config();
    c.tty = true;
    c.security.readonly_rootfs = true;
    c.security.no_new_privs = true;
    c.security.run_as_user = Some(0);
    c.resources.oom_score_adj = 1000;
    let spec = run(&c, &pod(), false).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.terminal(), Some(true));
    assert!(
        p.env()
            .as_ref()
            .unwrap()
            .contains(&"TERM=xterm".to_string())
    );
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.user().uid(), 0);
    assert_eq!(p.oom_score_adj(), Some(1000));
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    c.resources.oom_score_adj = i64::MAX;
    assert!(
        run(&c, &pod(), false)
            .unwrap_err()
            .to_string()
            .contains("oom_score_adj")
    );
}

#[test]
fn errors_surface_from_parts() {
    let mut c = config();
    c.security.run_as_username = "ghost".into();
    assert_eq!(
        run(&c, &pod(), false).unwrap_err(),
        SpecError::UnknownUser("ghost".into())
    );
    let mut c = config();
    c.devices = vec![Device {
        container_path: "/dev/fuse".into(),
        host_path: "/dev/fuse".into(),
        permissions: "rwm".into(),
    }];
    assert_eq!(
        run(&c, &pod(), false).unwrap_err(),
        SpecError::DeviceNotFound("/dev/fuse".into())
    );
    let mut p = pod();
    p.modes.pid = NamespaceMode::Pod;
    assert_eq!(
        run(&config(), &p, false).unwrap_err(),
        SpecError::MissingPodNamespace("pid")
    );
}
