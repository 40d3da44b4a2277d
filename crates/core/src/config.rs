//! berthd's configuration schema. Every key has a default, so berthd runs with no file.
//! The documented defaults live in `deploy/berth.toml`, which is embedded and printed by
//! `berthd config default`; a unit test keeps that file and `Config::default()` equal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The documented default configuration file.
pub const DEFAULT_TOML: &str = include_str!("../../../deploy/berth.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Persistent state: images, records.
    pub root_dir: PathBuf,
    /// Volatile state: sockets, lock, pinned namespaces.
    pub run_dir: PathBuf,
    pub grpc: GrpcConfig,
    pub image: ImageConfig,
    pub runtime: RuntimeConfig,
    pub network: NetworkConfig,
    pub streaming: StreamingConfig,
    pub docker: DockerConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    /// Per-registry settings, keyed by host[:port] as written in image references
    /// (`docker.io`, `127.0.0.1:5000`).
    pub registries: BTreeMap<String, RegistryConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    pub socket: PathBuf,
    /// Permission bits of the socket file.
    pub socket_mode: u32,
    /// Group owning the socket ("" keeps root's group).
    pub socket_group: String,
    /// Seconds in-flight RPCs get to finish on SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    pub tcp: TcpConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpConfig {
    pub enabled: bool,
    pub address: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    /// Layers downloaded at once per pull.
    pub max_concurrent_downloads: u32,
    /// Docker-style credentials file (`auths` map); a missing file is not an error.
    pub auth_file: PathBuf,
    /// Platform picked from manifest lists / OCI indexes: `os/arch[/variant]`.
    pub platform: String,
    /// Image used for pod sandboxes that need a process; never garbage collected.
    pub pause_image: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    pub cgroup_driver: CgroupDriver,
    /// RuntimeClass handlers pods may ask for; "" (the default handler) is always allowed.
    pub handlers: Vec<String>,
    /// Size of each pod's private /dev/shm tmpfs, in bytes.
    pub pod_shm_size: u64,
    /// Extra OCI runtimes (runc-compatible CLIs) by handler name → absolute binary path.
    /// A pod naming one of these in `runtime_handler` (and listed in `handlers`) gets its
    /// containers run by that binary instead of berth's own runtime ("berth" / "").
    pub oci_runtimes: BTreeMap<String, PathBuf>,
    /// Seconds ExecSync waits, after its command exited, for the output to reach EOF
    /// (processes the command left in the background may hold it open); then the call fails
    /// with "failed to drain exec process". Never past the request's own timeout.
    pub exec_drain_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Bridge the built-in network attaches pods to.
    pub bridge: String,
    /// IPv4 pod subnet; the bridge gets its first address.
    pub subnet: String,
    /// Optional IPv6 pod subnet (dual stack); "" for IPv4 only.
    pub subnet_v6: String,
    /// When set, pods are networked by the CNI plugins configured here instead.
    pub cni_conf_dir: PathBuf,
    /// Where CNI plugin binaries are looked up.
    pub cni_bin_dir: PathBuf,
    /// The built-in network's bridge and nft table are created with the first pod and kept
    /// while berthd runs (no per-pod churn). True: berthd removes them when it stops and
    /// no pod is attached. `berthd reset` removes them in any case.
    pub remove_on_exit: bool,
}

/// The HTTP server that carries Exec, Attach and PortForward sessions (the URLs those RPCs
/// answer). It is served with TLS when `grpc.tcp` is enabled (same certificate and client CA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingConfig {
    /// IP:port to listen on; port 0 picks a free port at start-up.
    pub address: String,
    /// Seconds a URL handed out by Exec/Attach/PortForward stays valid (used once).
    pub token_ttl_secs: u64,
    /// Seconds a finished exec waits for its output to drain (processes it left behind
    /// may hold its stdout open) before the session ends.
    pub drain_timeout_secs: u64,
}

/// The Docker Engine API (what the docker CLI, docker-compose and the Docker SDKs speak).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// Serve the Docker API at all.
    pub enabled: bool,
    /// The unix socket (`DOCKER_HOST=unix://<socket>`).
    pub socket: PathBuf,
    /// Permission bits of the socket file: access to it is root on the node.
    pub socket_mode: u32,
    /// Group owning the socket ("" keeps root's group), like Docker's `docker` group.
    pub socket_group: String,
    pub tcp: DockerTcpConfig,
}

/// The Docker API on TCP: opt-in, and only with mutual TLS (an open docker port is root on
/// the node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerTcpConfig {
    pub enabled: bool,
    pub address: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: PathBuf,
}

/// berthd's own Prometheus metrics (`GET /metrics`), off unless an address is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// IP:port to serve plain-HTTP `/metrics` on; "" turns it off.
    pub address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `berth_cri=debug,info`, ...
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Endpoints tried in order before the registry itself: `http://host:port` or
    /// `https://host[:port]`; a bare `host:port` means https (http if that host is insecure
    /// or on loopback).
    pub mirrors: Vec<String>,
    /// Talk plain HTTP (and accept any certificate over HTTPS).
    pub insecure: bool,
    /// Extra CA (PEM) trusted for this registry, on top of the system roots.
    pub ca_file: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            root_dir: "/var/lib/berth".into(),
            run_dir: "/run/berth".into(),
            grpc: GrpcConfig::default(),
            image: ImageConfig::default(),
            runtime: RuntimeConfig::default(),
            network: NetworkConfig::default(),
            streaming: StreamingConfig::default(),
            docker: DockerConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            registries: BTreeMap::new(),
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            socket: "/run/berth/berth.sock".into(),
            socket_mode: 0o660,
            socket_group: String::new(),
            shutdown_grace_secs: 10,
            tcp: TcpConfig::default(),
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: "127.0.0.1:10010".into(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            client_ca: PathBuf::new(),
        }
    }
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            max_concurrent_downloads: 3,
            auth_file: "/root/.docker/config.json".into(),
            platform: "linux/amd64".into(),
            pause_image: "registry.k8s.io/pause:3.9".into(),
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cgroup_driver: CgroupDriver::Cgroupfs,
            handlers: vec!["berth".into(), "runc".into(), "crun".into()],
            pod_shm_size: 64 << 20,
            oci_runtimes: BTreeMap::from([
                ("crun".into(), "/usr/bin/crun".into()),
                ("runc".into(), "/usr/bin/runc".into()),
            ]),
            exec_drain_timeout_secs: 2,
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            bridge: "berth0".into(),
            subnet: "10.88.0.0/16".into(),
            subnet_v6: String::new(),
            cni_conf_dir: PathBuf::new(),
            cni_bin_dir: "/usr/lib/cni".into(),
            remove_on_exit: false,
        }
    }
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:0".into(),
            token_ttl_secs: 60,
            drain_timeout_secs: 2,
        }
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: "/run/berth/docker.sock".into(),
            socket_mode: 0o660,
            socket_group: String::new(),
            tcp: DockerTcpConfig::default(),
        }
    }
}

impl Default for DockerTcpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: "127.0.0.1:2376".into(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            client_ca: PathBuf::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl CgroupDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupDriver::Cgroupfs => "cgroupfs",
            CgroupDriver::Systemd => "systemd",
        }
    }
}

impl Config {
    /// Parses and validates a TOML document. `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Checks what types alone cannot: absolute paths, sane numbers, complete TLS settings.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            path: origin.to_string(),
            key: key.to_string(),
            message,
        };
        let absolute = |key: &str, p: &Path| -> Result<(), ConfigError> {
            if p.is_absolute() {
                Ok(())
            } else {
                Err(bad(key, format!("{p:?} must be an absolute path")))
            }
        };
        absolute("root_dir", &self.root_dir)?;
        absolute("run_dir", &self.run_dir)?;
        absolute("grpc.socket", &self.grpc.socket)?;
        if self.grpc.socket_mode > 0o777 {
            return Err(bad(
                "grpc.socket_mode",
                format!(
                    "{:#o} is not a permission mode (0o000..=0o777)",
                    self.grpc.socket_mode
                ),
            ));
        }
        if self.grpc.shutdown_grace_secs > 3600 {
            return Err(bad(
                "grpc.shutdown_grace_secs",
                "must be at most 3600".into(),
            ));
        }
        let tcp = &self.grpc.tcp;
        let tls_files = [&tcp.tls_cert, &tcp.tls_key, &tcp.client_ca];
        check_tcp("grpc.tcp", tcp.enabled, &tcp.address, tls_files, &bad)?;
        let docker = &self.docker;
        absolute("docker.socket", &docker.socket)?;
        if docker.socket_mode > 0o777 {
            return Err(bad(
                "docker.socket_mode",
                format!(
                    "{:#o} is not a permission mode (0o000..=0o777)",
                    docker.socket_mode
                ),
            ));
        }
        if docker.enabled && docker.socket == self.grpc.socket {
            return Err(bad(
                "docker.socket",
                "must differ from grpc.socket (the CRI socket)".into(),
            ));
        }
        let dt = &docker.tcp;
        let tls_files = [&dt.tls_cert, &dt.tls_key, &dt.client_ca];
        check_tcp("docker.tcp", dt.enabled, &dt.address, tls_files, &bad)?;
        let m = &self.metrics;
        if !m.address.is_empty() && m.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "metrics.address",
                format!(
                    "{:?} is not an IP:port address (or \"\" for off)",
                    m.address
                ),
            ));
        }
        let st = &self.streaming;
        if st.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "streaming.address",
                format!("{:?} is not an IP:port address", st.address),
            ));
        }
        if !(1..=3600).contains(&st.token_ttl_secs) {
            return Err(bad(
                "streaming.token_ttl_secs",
                format!("{} is out of range 1..=3600", st.token_ttl_secs),
            ));
        }
        if st.drain_timeout_secs > 300 {
            return Err(bad(
                "streaming.drain_timeout_secs",
                format!("{} is out of range 0..=300", st.drain_timeout_secs),
            ));
        }
        let n = self.image.max_concurrent_downloads;
        if !(1..=64).contains(&n) {
            return Err(bad(
                "image.max_concurrent_downloads",
                format!("{n} is out of range 1..=64"),
            ));
        }
        if !self.image.auth_file.as_os_str().is_empty() {
            absolute("image.auth_file", &self.image.auth_file)?;
        }
        let parts: Vec<&str> = self.image.platform.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad(
                "image.platform",
                format!(
                    "{:?} must be os/arch or os/arch/variant",
                    self.image.platform
                ),
            ));
        }
        if let Err(e) = self.image.pause_image.parse::<crate::Reference>() {
            return Err(bad("image.pause_image", e.to_string()));
        }
        let net = &self.network;
        let bridge_ok = !net.bridge.is_empty()
            && net.bridge.len() <= 15
            && net
                .bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !bridge_ok {
            return Err(bad(
                "network.bridge",
                format!(
                    "{:?} must be 1..=15 letters, digits, '-', '_' or '.'",
                    net.bridge
                ),
            ));
        }
        match net.subnet.parse::<crate::pod::ipam::Subnet>() {
            Ok(s) if s.is_ipv4() => {}
            Ok(_) => return Err(bad("network.subnet", "must be an IPv4 subnet".into())),
            Err(e) => return Err(bad("network.subnet", e.to_string())),
        }
        if !net.subnet_v6.is_empty() {
            match net.subnet_v6.parse::<crate::pod::ipam::Subnet>() {
                Ok(s) if !s.is_ipv4() => {}
                Ok(_) => return Err(bad("network.subnet_v6", "must be an IPv6 subnet".into())),
                Err(e) => return Err(bad("network.subnet_v6", e.to_string())),
            }
        }
        if !net.cni_conf_dir.as_os_str().is_empty() {
            absolute("network.cni_conf_dir", &net.cni_conf_dir)?;
            absolute("network.cni_bin_dir", &net.cni_bin_dir)?;
        }
        if self.runtime.exec_drain_timeout_secs > 300 {
            return Err(bad(
                "runtime.exec_drain_timeout_secs",
                format!(
                    "{} is out of range 0..=300",
                    self.runtime.exec_drain_timeout_secs
                ),
            ));
        }
        if self.runtime.pod_shm_size == 0 {
            return Err(bad("runtime.pod_shm_size", "must be greater than 0".into()));
        }
        if let Some(h) = self.runtime.handlers.iter().find(|h| h.is_empty()) {
            return Err(bad(
                "runtime.handlers",
                format!("{h:?}: handler names must not be empty"),
            ));
        }
        for (name, bin) in &self.runtime.oci_runtimes {
            let key = format!("runtime.oci_runtimes.{name}");
            if name.is_empty() || name == "berth" {
                return Err(bad(
                    &key,
                    "handler name must be non-empty and not \"berth\" (berth's own runtime)".into(),
                ));
            }
            absolute(&key, bin)?;
        }
        if let Some(h) = self
            .runtime
            .handlers
            .iter()
            .find(|h| *h != "berth" && !self.runtime.oci_runtimes.contains_key(*h))
        {
            return Err(bad(
                "runtime.handlers",
                format!("{h:?} has no runtime.oci_runtimes entry (its binary)"),
            ));
        }
        for (host, reg) in &self.registries {
            let key = format!("registries.\"{host}\"");
            if host.is_empty() || host.contains('/') {
                return Err(bad(
                    &key,
                    "must be a registry host[:port], without scheme or path".into(),
                ));
            }
            for m in &reg.mirrors {
                let rest = m
                    .strip_prefix("http://")
                    .or_else(|| m.strip_prefix("https://"))
                    .unwrap_or(m);
                if rest.is_empty() || m.contains(char::is_whitespace) {
                    return Err(bad(
                        &format!("{key}.mirrors"),
                        format!("{m:?} must be http(s)://host[:port][/path] or host[:port]"),
                    ));
                }
            }
            if !reg.ca_file.as_os_str().is_empty() {
                absolute(&format!("{key}.ca_file"), &reg.ca_file)?;
            }
        }
        Ok(())
    }

    /// Where images and their layers are kept.
    pub fn image_dir(&self) -> PathBuf {
        self.root_dir.join("images")
    }
}

/// A TCP listener's settings (`grpc.tcp`, `docker.tcp`): when enabled, an IP:port and all
/// three TLS files (absolute paths), since TCP is served only with mutual TLS.
fn check_tcp(
    prefix: &str,
    enabled: bool,
    address: &str,
    [cert, key, ca]: [&PathBuf; 3],
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if !enabled {
        return Ok(());
    }
    if address.parse::<std::net::SocketAddr>().is_err() {
        return Err(bad(
            &format!("{prefix}.address"),
            format!("{address:?} is not an IP:port address"),
        ));
    }
    for (name, p) in [("tls_cert", cert), ("tls_key", key), ("client_ca", ca)] {
        let key = format!("{prefix}.{name}");
        if p.as_os_str().is_empty() {
            return Err(bad(
                &key,
                format!(
                    "is required when {prefix}.enabled = true (TCP is served only with mutual TLS)"
                ),
            ));
        }
        if !p.is_absolute() {
            return Err(bad(&key, format!("{p:?} must be an absolute path")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_equal_builtin_defaults() {
        let parsed = Config::from_toml(DEFAULT_TOML, "deploy/berth.toml").unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Config::from_toml("", "x").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("[grpc]\nsokcet = \"/x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sokcet") && e.contains("socket"), "{e}");
    }

    #[test]
    fn bad_value_names_allowed_values() {
        let e = Config::from_toml("[runtime]\ncgroup_driver = \"foo\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cgroupfs") && e.contains("systemd"), "{e}");
        let e = Config::from_toml("[image]\nmax_concurrent_downloads = 0\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("image.max_concurrent_downloads"), "{e}");
        let e = Config::from_toml("[grpc.tcp]\nenabled = true\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grpc.tcp.tls_cert"), "{e}");
        let e = Config::from_toml("root_dir = \"rel\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("root_dir") && e.contains("absolute"), "{e}");
    }

    #[test]
    fn oci_runtimes_parse_and_validate() {
        let c = Config::from_toml(
            "[runtime]\nhandlers = [\"berth\", \"kata\"]\n[runtime.oci_runtimes]\nkata = \"/opt/kata/bin/runtime\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            c.runtime.oci_runtimes["kata"],
            PathBuf::from("/opt/kata/bin/runtime")
        );
        let e = Config::from_toml("[runtime.oci_runtimes]\nrunc = \"runc\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("runtime.oci_runtimes.runc") && e.contains("absolute"),
            "{e}"
        );
        let e = Config::from_toml("[runtime]\nhandlers = [\"youki\"]\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("youki") && e.contains("oci_runtimes"), "{e}");
    }

    #[test]
    fn docker_section() {
        let c = Config::from_toml("[docker]\nsocket = \"/tmp/d.sock\"\n", "t").unwrap();
        assert!(c.docker.enabled);
        assert_eq!(c.docker.socket, PathBuf::from("/tmp/d.sock"));
        assert_eq!(c.docker.tcp.address, "127.0.0.1:2376");
        let e = Config::from_toml("[docker.tcp]\nenabled = true\n", "t")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("docker.tcp.tls_cert") && e.contains("mutual TLS"),
            "{e}"
        );
        let e = Config::from_toml("[docker]\nsocket = \"/run/berth/berth.sock\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("docker.socket"), "{e}");
        let e = Config::from_toml("[docker]\nsocket = \"d.sock\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn registries_parse() {
        let c = Config::from_toml(
            "[registries.\"127.0.0.1:5000\"]\ninsecure = true\nmirrors = [\"http://127.0.0.1:5001\"]\n",
            "t",
        )
        .unwrap();
        assert!(c.registries["127.0.0.1:5000"].insecure);
    }
}
