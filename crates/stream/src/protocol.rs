//! Subprotocol negotiation, as the kubelet's streaming library does it: the client lists
//! what it speaks (most preferred first), the first one the server knows wins.

use http::HeaderMap;

use crate::status::StatusFormat;
use crate::ws::Codec;

/// SPDY exec/attach (`X-Stream-Protocol-Version`), the kubelet's list.
pub const SPDY_REMOTECOMMAND: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
pub const SPDY_PORTFORWARD: &[&str] = &["portforward.k8s.io"];

pub const WS_REMOTECOMMAND: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];
/// KEP-4006: SPDY frames tunnelled in WebSocket binary messages (client-go's
/// `NewSPDYOverWebsocketDialer`, crictl's `port-forward --transport websocket`).
pub const WS_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
pub const WS_PORTFORWARD: &[&str] = &[
    WS_TUNNEL,
    "portforward.k8s.io",
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// The values of a header that may be repeated and comma-separated.
pub fn header_list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The first of the client's protocols the server supports.
pub fn negotiate(client: &[String], server: &[&'static str]) -> Option<&'static str> {
    client
        .iter()
        .find_map(|c| server.iter().find(|s| **s == c.as_str()).copied())
}

/// How a negotiated exec/attach WebSocket protocol frames and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsRemoteCommand {
    pub codec: Codec,
    pub format: StatusFormat,
    /// v5: the client closes its stdin with `[255, 0]`.
    pub close_signals: bool,
}

/// `""`: the client asked for no subprotocol, which the kubelet serves as channel.k8s.io.
pub fn ws_remotecommand(protocol: &str) -> WsRemoteCommand {
    let (codec, format, close_signals) = match protocol {
        "v5.channel.k8s.io" => (Codec::Binary, StatusFormat::Json, true),
        "v4.channel.k8s.io" => (Codec::Binary, StatusFormat::Json, false),
        "v4.base64.channel.k8s.io" => (Codec::Base64, StatusFormat::Json, false),
        "base64.channel.k8s.io" => (Codec::Base64, StatusFormat::Text, false),
        _ => (Codec::Binary, StatusFormat::Text, false),
    };
    WsRemoteCommand {
        codec,
        format,
        close_signals,
    }
}

/// A negotiated port-forward WebSocket protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsPortForward {
    Tunnel,
    /// Channel 2i carries port i's data, 2i+1 its errors.
    Channels {
        codec: Codec,
        close_signals: bool,
    },
}

pub fn ws_portforward(protocol: &str) -> WsPortForward {
    match protocol {
        WS_TUNNEL => WsPortForward::Tunnel,
        "v4.base64.channel.k8s.io" | "base64.channel.k8s.io" => WsPortForward::Channels {
            codec: Codec::Base64,
            close_signals: false,
        },
        "v5.channel.k8s.io" => WsPortForward::Channels {
            codec: Codec::Binary,
            close_signals: true,
        },
        _ => WsPortForward::Channels {
            codec: Codec::Binary,
            close_signals: false,
        },
    }
}

/// Ports of a WebSocket port-forward: every `port` query parameter, each a comma list.
pub fn query_ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "port" {
            continue;
        }
        if value.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in value.split(',') {
            let port: u16 = p
                .parse()
                .map_err(|e| format!("unable to parse {value:?} as a port: {e}"))?;
            if port == 0 {
                return Err(format!("port {value:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_clients_preference() {
        let client = vec!["v5.channel.k8s.io".to_string(), "v4.channel.k8s.io".into()];
        assert_eq!(
            negotiate(&client, SPDY_REMOTECOMMAND),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(
            negotiate(&client, WS_REMOTECOMMAND),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(negotiate(&["nope".to_string()], SPDY_PORTFORWARD), None);
    }

    #[test]
    fn header_lists_split_on_commas() {
        let mut h = HeaderMap::new();
        h.append("x-stream-protocol-version", "a, b".parse().expect("value"));
        h.append("x-stream-protocol-version", "c".parse().expect("value"));
        assert_eq!(
            header_list(&h, "x-stream-protocol-version"),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn ports_come_from_the_query() {
        assert_eq!(
            query_ports(Some("port=80&port=81,82")),
            Ok(vec![80, 81, 82])
        );
        assert!(query_ports(Some("port=0")).is_err());
        assert!(query_ports(Some("port=x")).is_err());
        assert!(query_ports(None).is_err());
    }
}
