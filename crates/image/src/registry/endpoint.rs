//! Where the requests for one registry go: its mirrors, in order, then the registry itself.
//! Pure: turns configuration strings into endpoints; no I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_core::config::RegistryConfig;

/// The host that serves Docker Hub's distribution API (`docker.io` is only a name).
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Https,
    Http,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// One place that can serve `/v2/...` for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` the connection goes to.
    pub host: String,
    /// Key for credentials and per-registry settings: the registry name (`docker.io`) for
    /// the upstream endpoint, the mirror's `host[:port]` for a mirror.
    pub key: String,
    /// Path before `/v2` (`/cache` for `https://m/cache`), no trailing slash; usually empty.
    pub prefix: String,
    /// Schemes to try in order; a later one is used only when the earlier cannot connect
    /// (an insecure or loopback registry may speak TLS or not, as with Docker).
    pub schemes: Vec<Scheme>,
    pub mirror: bool,
}

impl Endpoint {
    /// Full URL of `path` (which starts with `/v2/`).
    pub fn url(&self, scheme: Scheme, path: &str) -> String {
        format!("{}://{}{}{}", scheme.as_str(), self.host, self.prefix, path)
    }

    /// A label for logs and errors: `mirror h:1/path` or the registry name.
    pub fn describe(&self) -> String {
        if self.mirror {
            format!("mirror {}{}", self.host, self.prefix)
        } else {
            self.key.clone()
        }
    }
}

/// True for `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if host_port.matches(':').count() > 1 {
        host_port // a bare IPv6 address without port
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn plain_http_allowed(host: &str, registries: &BTreeMap<String, RegistryConfig>) -> bool {
    registries.get(host).is_some_and(|r| r.insecure) || is_loopback(host)
}

fn default_schemes(host: &str, registries: &BTreeMap<String, RegistryConfig>) -> Vec<Scheme> {
    if plain_http_allowed(host, registries) {
        vec![Scheme::Https, Scheme::Http]
    } else {
        vec![Scheme::Https]
    }
}

/// The registry itself. `docker.io` is served by `registry-1.docker.io`.
pub fn upstream(registry: &str, registries: &BTreeMap<String, RegistryConfig>) -> Endpoint {
    let host = if registry == berth_core::reference::DEFAULT_REGISTRY {
        DOCKER_HUB_HOST.to_string()
    } else {
        registry.to_string()
    };
    Endpoint {
        schemes: default_schemes(registry, registries),
        host,
        key: registry.to_string(),
        prefix: String::new(),
        mirror: false,
    }
}

/// Parses a mirror: `http://host:port[/path]`, `https://host[:port][/path]` or bare
/// `host[:port][/path]` (https, plus http fallback when the host is insecure or loopback).
pub fn parse_mirror(
    mirror: &str,
    registries: &BTreeMap<String, RegistryConfig>,
) -> Result<Endpoint, String> {
    let m = mirror.trim();
    let (explicit, rest) = if let Some(r) = m.strip_prefix("http://") {
        (Some(Scheme::Http), r)
    } else if let Some(r) = m.strip_prefix("https://") {
        (Some(Scheme::Https), r)
    } else if m.contains("://") {
        return Err(format!(
            "mirror {mirror:?}: only http:// and https:// are supported"
        ));
    } else {
        (None, m)
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
        return Err(format!("mirror {mirror:?}: host is missing or invalid"));
    }
    // `https://m/v2` and `https://m/v2/` name the API root itself, like containerd accepts.
    let mut prefix = path.trim_end_matches('/').to_string();
    if prefix.ends_with("/v2") {
        prefix.truncate(prefix.len() - 3);
    }
    let schemes = match explicit {
        Some(s) => vec![s],
        None => default_schemes(host, registries),
    };
    Ok(Endpoint {
        host: host.to_string(),
        key: host.to_string(),
        prefix,
        schemes,
        mirror: true,
    })
}

/// Mirrors of `registry` in configured order, then the registry itself (always last).
pub fn endpoints(
    registry: &str,
    registries: &BTreeMap<String, RegistryConfig>,
) -> Result<Vec<Endpoint>, String> {
    let mut out = Vec::new();
    if let Some(cfg) = registries.get(registry) {
        for m in &cfg.mirrors {
            out.push(parse_mirror(m, registries)?);
        }
    }
    out.push(upstream(registry, registries));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(insecure: &[&str]) -> BTreeMap<String, RegistryConfig> {
        insecure
            .iter()
            .map(|h| {
                (
                    h.to_string(),
                    RegistryConfig {
                        insecure: true,
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn loopback_detection() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn upstream_endpoints() {
        let r = regs(&["reg.lan:5000"]);
        let hub = upstream("docker.io", &r);
        assert_eq!(hub.host, DOCKER_HUB_HOST);
        assert_eq!(hub.key, "docker.io");
        assert_eq!(hub.schemes, vec![Scheme::Https]);
        assert_eq!(
            hub.url(Scheme::Https, "/v2/"),
            "https://registry-1.docker.io/v2/"
        );
        assert_eq!(
            upstream("reg.lan:5000", &r).schemes,
            vec![Scheme::Https, Scheme::Http]
        );
        assert_eq!(
            upstream("127.0.0.1:5000", &r).schemes,
            vec![Scheme::Https, Scheme::Http]
        );
        assert_eq!(upstream("quay.io", &r).schemes, vec![Scheme::Https]);
    }

    #[test]
    fn mirror_forms() {
        let r = regs(&["cache.lan:5000"]);
        let m = parse_mirror("http://127.0.0.1:5001", &r).unwrap();
        assert_eq!((m.host.as_str(), m.prefix.as_str()), ("127.0.0.1:5001", ""));
        assert_eq!(m.schemes, vec![Scheme::Http]);
        assert_eq!(
            m.url(Scheme::Http, "/v2/x/manifests/t"),
            "http://127.0.0.1:5001/v2/x/manifests/t"
        );
        let m = parse_mirror("https://mirror.example.com/cache/", &r).unwrap();
        assert_eq!(
            (m.host.as_str(), m.prefix.as_str()),
            ("mirror.example.com", "/cache")
        );
        assert_eq!(m.schemes, vec![Scheme::Https]);
        let m = parse_mirror("https://mirror.example.com/v2/", &r).unwrap();
        assert_eq!(m.prefix, "");
        assert_eq!(
            parse_mirror("mirror.example.com", &r).unwrap().schemes,
            vec![Scheme::Https]
        );
        assert_eq!(
            parse_mirror("cache.lan:5000", &r).unwrap().schemes,
            vec![Scheme::Https, Scheme::Http]
        );
        assert_eq!(
            parse_mirror("localhost:5001", &r).unwrap().schemes,
            vec![Scheme::Https, Scheme::Http]
        );
        assert!(parse_mirror("ftp://x", &r).is_err());
        assert!(parse_mirror("http://", &r).is_err());
    }

    #[test]
    fn mirrors_come_first_upstream_last() {
        let mut r = BTreeMap::new();
        r.insert(
            "docker.io".to_string(),
            RegistryConfig {
                mirrors: vec!["http://127.0.0.1:1".into(), "https://m2".into()],
                ..Default::default()
            },
        );
        let eps = endpoints("docker.io", &r).unwrap();
        let hosts: Vec<_> = eps.iter().map(|e| (e.host.as_str(), e.mirror)).collect();
        assert_eq!(
            hosts,
            vec![
                ("127.0.0.1:1", true),
                ("m2", true),
                (DOCKER_HUB_HOST, false)
            ]
        );
        assert_eq!(endpoints("quay.io", &r).unwrap().len(), 1);
    }
}
