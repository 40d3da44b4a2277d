//! Docker's HostConfig, the parts that become the pod's and the container's: published
//! ports (PortBindings, PublishAllPorts) and resource limits (binds and volumes are in
//! crate::volumes).

use std::collections::BTreeSet;

use berth_core::container::Resources;
use berth_core::image::Image;
use berth_core::pod::record::{PortMapping, Protocol};
use berth_engine::RestartPolicy;
use bollard_stubs::models::{ContainerCreateBody, HostConfig, RestartPolicyNameEnum};

use crate::error::ApiError;

/// `80/tcp` → (80, tcp).
pub fn parse_port(key: &str) -> Result<(u16, Protocol), ApiError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let bad = || ApiError::bad_request(format!("invalid port specification: {key:?}"));
    let proto = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return Err(bad()),
    };
    Ok((port.parse().map_err(|_| bad())?, proto))
}

/// PortBindings, plus every exposed port (request's and image's) on a free host port with
/// PublishAllPorts (`-P`).
pub fn ports(
    body: &ContainerCreateBody,
    host: &HostConfig,
    image: &Image,
) -> Result<Vec<PortMapping>, ApiError> {
    let mut out = Vec::new();
    let mut bound = BTreeSet::new();
    for (key, bindings) in host.port_bindings.iter().flatten() {
        let (container_port, protocol) = parse_port(key)?;
        bound.insert((container_port, protocol.as_str()));
        for b in bindings.iter().flatten() {
            let host_ip = match b.host_ip.as_deref().unwrap_or("") {
                "" | "0.0.0.0" | "::" => None,
                ip => Some(ip.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid host IP {ip:?} for port {key}"))
                })?),
            };
            let host_port = match b.host_port.as_deref().unwrap_or("") {
                "" => free_port(protocol)?,
                p => p.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid host port {p:?} for port {key} (a single port number)"
                    ))
                })?,
            };
            out.push(PortMapping {
                protocol,
                container_port,
                host_port,
                host_ip,
            });
        }
    }
    if host.publish_all_ports == Some(true) {
        let mut exposed: BTreeSet<String> = body.exposed_ports.iter().flatten().cloned().collect();
        if let Some(m) = image
            .config
            .get("config")
            .and_then(|c| c.get("ExposedPorts"))
            .and_then(|e| e.as_object())
        {
            exposed.extend(m.keys().cloned());
        }
        for key in exposed {
            let (container_port, protocol) = parse_port(&key)?;
            if bound.insert((container_port, protocol.as_str())) {
                out.push(PortMapping {
                    protocol,
                    container_port,
                    host_port: free_port(protocol)?,
                    host_ip: None,
                });
            }
        }
    }
    Ok(out)
}

/// A host port the kernel has free now, as dockerd picks from the ephemeral range.
fn free_port(protocol: Protocol) -> Result<u16, ApiError> {
    let any = std::net::Ipv4Addr::UNSPECIFIED;
    let port = match protocol {
        Protocol::Udp => std::net::UdpSocket::bind((any, 0)).and_then(|s| s.local_addr()),
        _ => std::net::TcpListener::bind((any, 0)).and_then(|s| s.local_addr()),
    };
    port.map(|a| a.port())
        .map_err(|e| ApiError::internal(format!("finding a free host port: {e}")))
}

/// Memory, CPU (NanoCpus as a CFS quota over a 100 ms period, or CpuQuota/CpuPeriod) and
/// shares.
pub fn resources(host: &HostConfig) -> Result<Resources, ApiError> {
    let mut r = Resources {
        memory_limit_in_bytes: host.memory.unwrap_or(0),
        cpu_shares: host.cpu_shares.unwrap_or(0),
        cpu_quota: host.cpu_quota.unwrap_or(0),
        cpu_period: host.cpu_period.unwrap_or(0),
        ..Default::default()
    };
    if let Some(n) = host.nano_cpus.filter(|n| *n != 0) {
        if r.cpu_quota != 0 || r.cpu_period != 0 {
            return Err(ApiError::bad_request(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
        r.cpu_period = 100_000;
        r.cpu_quota = n / 10_000;
    }
    if r.memory_limit_in_bytes != 0 && r.memory_limit_in_bytes < 6 * 1024 * 1024 {
        return Err(ApiError::bad_request("Minimum memory limit allowed is 6MB"));
    }
    Ok(r)
}

/// `HostConfig.RestartPolicy` as the engine's policy. Docker refuses a policy together
/// with AutoRemove (`--rm`), and a retry count outside `on-failure`.
pub fn restart_policy(host: &HostConfig) -> Result<RestartPolicy, ApiError> {
    let Some(p) = &host.restart_policy else {
        return Ok(RestartPolicy::No);
    };
    let retries = p.maximum_retry_count.unwrap_or(0);
    let policy = match p.name {
        None | Some(RestartPolicyNameEnum::EMPTY) | Some(RestartPolicyNameEnum::NO) => {
            RestartPolicy::No
        }
        Some(RestartPolicyNameEnum::ALWAYS) => RestartPolicy::Always,
        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => RestartPolicy::UnlessStopped,
        Some(RestartPolicyNameEnum::ON_FAILURE) => RestartPolicy::OnFailure {
            max_retries: u32::try_from(retries).map_err(|_| {
                ApiError::bad_request(format!("invalid restart policy: maximum retry count must be a positive number, not {retries}"))
            })?,
        },
    };
    if retries != 0 && !matches!(policy, RestartPolicy::OnFailure { .. }) {
        return Err(ApiError::bad_request(format!(
            "invalid restart policy: maximum retry count can only be used with 'on-failure', not '{policy}'"
        )));
    }
    if host.auto_remove == Some(true) && policy != RestartPolicy::No {
        return Err(ApiError::bad_request(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_cpus() {
        assert_eq!(parse_port("80/tcp").unwrap(), (80, Protocol::Tcp));
        assert_eq!(parse_port("53/udp").unwrap(), (53, Protocol::Udp));
        assert!(parse_port("x/tcp").is_err());
        let r = resources(&HostConfig {
            nano_cpus: Some(1_500_000_000),
            memory: Some(64 << 20),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((r.cpu_period, r.cpu_quota), (100_000, 150_000));
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        assert!(
            resources(&HostConfig {
                memory: Some(1024),
                ..Default::default()
            })
            .is_err()
        );
    }
}
