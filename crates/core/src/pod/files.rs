//! Contents of the files every pod gets: resolv.conf, hosts, hostname.

use std::net::IpAddr;

use super::record::DnsConfig;

/// resolv.conf from the CRI DNS config; `None` means "use the node's" (the caller copies
/// the host file), as containerd does when the kubelet sends no servers/searches/options.
pub fn resolv_conf(dns: &DnsConfig) -> Option<String> {
    if dns.servers.is_empty() && dns.searches.is_empty() && dns.options.is_empty() {
        return None;
    }
    let mut s = String::new();
    if !dns.searches.is_empty() {
        s.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for server in &dns.servers {
        s.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.options.is_empty() {
        s.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    Some(s)
}

/// /etc/hosts with localhost entries and, when the pod has one, its IP and hostname.
pub fn hosts(hostname: &str, ip: Option<IpAddr>) -> String {
    hosts_with(hostname, ip, &[])
}

/// [`hosts`] followed by `extra` lines (Docker's links: `IP<TAB>name alias`).
pub fn hosts_with(hostname: &str, ip: Option<IpAddr>, extra: &[String]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = ip
        && !hostname.is_empty()
    {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    for line in extra {
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

pub fn hostname_file(hostname: &str) -> String {
    format!("{hostname}\n")
}

/// A hostname the kernel accepts: 1..=64 bytes, letters, digits, '-' and '.'.
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 64
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_files() {
        let dns = DnsConfig {
            servers: vec!["10.0.0.10".into(), "1.1.1.1".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns).unwrap(),
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.0.0.10\nnameserver 1.1.1.1\noptions ndots:5\n"
        );
        assert_eq!(resolv_conf(&DnsConfig::default()), None);
        let h = hosts("web-0", Some("10.88.0.5".parse().unwrap()));
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.88.0.5\tweb-0\n"));
        assert!(valid_hostname("web-0.example"));
        assert!(!valid_hostname("bad host"));
        assert!(!valid_hostname(&"a".repeat(65)));
    }
}
