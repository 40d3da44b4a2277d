//! The name server of a named network, as dockerd's embedded DNS (or podman's
//! aardvark-dns): it listens on the network's gateway address, port 53 (UDP and TCP),
//! which the containers' resolv.conf names. It answers A queries for the names of the
//! containers attached to that network (container name, aliases, short and full id) with
//! their address there; AAAA and other types for those names get an empty answer. Every
//! other query is forwarded, as it came, to the node's resolvers (/etc/resolv.conf), and
//! a SERVFAIL goes back when none answers within [`FORWARD_TIMEOUT`].
//!
//! Why this shape: the DNS wire format (names, compression, record types) is
//! `hickory-proto`'s, a well-kept crate that parses and builds messages and nothing else;
//! a full server crate (hickory-server) would bring zones, catalogs and authorities where
//! we answer from a table of containers. The loop is a few lines of tokio. The names are
//! read from the pod records at each query (a scan of the Docker pods): always current,
//! nothing to keep in sync when containers start, stop, connect or go.
//!
//! Why in berthd and on the gateway address: containers reach it without anything in
//! their namespace (dockerd's 127.0.0.11 needs a DNAT rule inside each container), and the
//! node sees it as one more local socket. The gateway address exists once the bridge
//! does; until then (berthd starting before the bridges are made again) binding is retried.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use berth_core::pod::ipam::Subnet;
use berth_core::pod::networks::NetworkDef;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::{aliases, attachment, running_pods};
use crate::DockerApi;

/// How long a forwarded query may take, all resolvers together: well below the clients'
/// own timeout (glibc and busybox wait 5 s), so they get our SERVFAIL rather than silence.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// Time to live of the answers (dockerd's).
const TTL: u32 = 600;

/// The running name servers, by network id.
#[derive(Default)]
pub struct Servers {
    api: OnceLock<Weak<DockerApi>>,
    running: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

impl Servers {
    /// Called once by `DockerApi::new`: the servers read the containers through it.
    pub fn set_api(&self, api: Weak<DockerApi>) {
        let _ = self.api.set(api);
    }

    /// Starts the server of `def` (once).
    pub fn start(&self, def: &NetworkDef) {
        let Some(api) = self.api.get().cloned() else {
            return;
        };
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(&def.id).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let (id, gw, subnet) = (def.id.clone(), def.gateway, def.subnet);
        running.insert(def.id.clone(), tokio::spawn(serve(api, id, gw, subnet)));
    }

    /// Stops the server of network `id` (removed).
    pub fn stop(&self, id: &str) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = running.remove(id) {
            t.abort();
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let running = self.running.get_mut().unwrap_or_else(|p| p.into_inner());
        for (_, t) in running.drain() {
            t.abort();
        }
    }
}

/// Serves network `net` on `gw`:53 to clients of `subnet` only: a container of another
/// network reaches the address too (it is the node's), but must not learn this one's names.
async fn serve(api: Weak<DockerApi>, net: String, gw: IpAddr, subnet: Subnet) {
    let addr = SocketAddr::new(gw, 53);
    let mut warned = false;
    let udp = loop {
        match UdpSocket::bind(addr).await {
            Ok(s) => break Arc::new(s),
            Err(e) => {
                if !warned {
                    tracing::info!(network = %net, %addr, error = %e, "name server not listening yet; retrying every second");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tracing::debug!(network = %net, %addr, "name server listening");
    // The TCP side ends with this task (stopped when the network goes), so its listener
    // never outlives the network.
    let _tcp = match TcpListener::bind(addr).await {
        Ok(l) => Some(AbortOnDrop(tokio::spawn(serve_tcp(
            l,
            api.clone(),
            net.clone(),
            subnet,
        )))),
        Err(e) => {
            tracing::warn!(network = %net, %addr, error = %e, "name server: no TCP");
            None
        }
    };
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match udp.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "name server: receiving");
                continue;
            }
        };
        if !subnet.contains(peer.ip()) {
            continue;
        }
        let query = buf[..n].to_vec();
        let (udp, api, net) = (udp.clone(), api.clone(), net.clone());
        tokio::spawn(async move {
            if let Some(resp) = answer(&api, &net, &query).await {
                let _ = udp.send_to(&resp, peer).await;
            }
        });
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// TCP: each message is preceded by its length (two bytes, RFC 1035 4.2.2).
async fn serve_tcp(listener: TcpListener, api: Weak<DockerApi>, net: String, subnet: Subnet) {
    loop {
        let Ok((mut conn, peer)) = listener.accept().await else {
            continue;
        };
        if !subnet.contains(peer.ip()) {
            continue;
        }
        let (api, net) = (api.clone(), net.clone());
        tokio::spawn(async move {
            loop {
                let Ok(len) = conn.read_u16().await else {
                    return;
                };
                let mut query = vec![0u8; usize::from(len)];
                if conn.read_exact(&mut query).await.is_err() {
                    return;
                }
                let Some(resp) = answer(&api, &net, &query).await else {
                    return;
                };
                let Ok(len) = u16::try_from(resp.len()) else {
                    return;
                };
                if conn.write_u16(len).await.is_err() || conn.write_all(&resp).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The response to `query` (None: not a DNS query, dropped).
async fn answer(api: &Weak<DockerApi>, net: &str, query: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    if msg.message_type() != MessageType::Query {
        return None;
    }
    if let Some((name, _)) = question(&msg)
        && let Some(api) = api.upgrade()
        && let Some(ips) = lookup(&api, net, &name)
    {
        return respond(&msg, &ips).to_vec().ok();
    }
    match forward(query).await {
        Some(resp) => Some(resp),
        None => Message::error_msg(msg.id(), msg.op_code(), ResponseCode::ServFail)
            .to_vec()
            .ok(),
    }
}

/// The one question of a query: its name (lowercase, no final dot) and type.
pub fn question(msg: &Message) -> Option<(String, RecordType)> {
    match msg.queries() {
        [q] => {
            let name = q
                .name()
                .to_ascii()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            Some((name, q.query_type()))
        }
        _ => None,
    }
}

/// The answer for a name we know: its addresses for A, nothing (NOERROR) for the rest.
pub fn respond(query: &Message, ips: &[Ipv4Addr]) -> Message {
    let mut resp = Message::new();
    resp.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .set_response_code(ResponseCode::NoError);
    for q in query.queries() {
        resp.add_query(q.clone());
        if q.query_type() == RecordType::A {
            for ip in ips {
                resp.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(*ip))));
            }
        }
    }
    resp
}

/// The addresses on network `net` of the running containers called `name`; None when no
/// container on it has that name.
fn lookup(api: &DockerApi, net: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
    let mut found = None;
    for (pod, cid) in running_pods(api) {
        let Some(a) = attachment(&pod, net) else {
            continue;
        };
        let short: String = cid.chars().take(12).collect();
        let known = pod.name.eq_ignore_ascii_case(name)
            || short == name
            || cid == name
            || aliases(&pod, net)
                .iter()
                .any(|x| x.eq_ignore_ascii_case(name));
        if !known {
            continue;
        }
        let ips: &mut Vec<Ipv4Addr> = found.get_or_insert_with(Vec::new);
        if let Some(IpAddr::V4(ip)) = a.ip {
            ips.push(ip);
        }
    }
    found
}

/// The node's resolvers, from /etc/resolv.conf.
fn upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|t| parse_resolv_conf(&t))
        .unwrap_or_default()
}

pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            // A zone index (fe80::1%eth0) is not parsed: link-local resolvers are skipped.
            w.next()?.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Sends the query to each resolver in turn (within [`FORWARD_TIMEOUT`] in all); the first
/// answer is relayed as it is.
async fn forward(query: &[u8]) -> Option<Vec<u8>> {
    forward_to(query, &upstreams()).await
}

async fn forward_to(query: &[u8], ups: &[SocketAddr]) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
    for (i, up) in ups.iter().copied().enumerate() {
        // An equal share of what is left for each resolver still to try.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let share = left / u32::try_from(ups.len() - i).unwrap_or(1);
        let local: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(sock) = UdpSocket::bind(local).await else {
            continue;
        };
        if sock.send_to(query, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(share, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) if from == up => return Some(buf[..n].to_vec()),
            _ => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(4242).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        Message::from_vec(&m.to_vec().unwrap()).unwrap()
    }

    #[test]
    fn answers_a_and_empty_aaaa() {
        let q = query("Web.", RecordType::A);
        assert_eq!(question(&q), Some(("web".into(), RecordType::A)));
        let ips = ["172.18.0.2".parse().unwrap(), "172.18.0.3".parse().unwrap()];
        let r = Message::from_vec(&respond(&q, &ips).to_vec().unwrap()).unwrap();
        assert_eq!(r.id(), 4242);
        assert_eq!(r.message_type(), MessageType::Response);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        let got: Vec<_> = r
            .answers()
            .iter()
            .map(|a| a.data().clone())
            .collect::<Vec<_>>();
        assert_eq!(got, vec![RData::A(A(ips[0])), RData::A(A(ips[1]))]);
        let r = respond(&query("web", RecordType::AAAA), &ips);
        assert!(r.answers().is_empty());
        assert_eq!(r.response_code(), ResponseCode::NoError);
    }

    #[tokio::test]
    async fn forwards_past_a_silent_resolver() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ups = [silent.local_addr().unwrap(), server.local_addr().unwrap()];
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, peer) = server.recv_from(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            let r = respond(&q, &["10.0.0.9".parse().unwrap()]);
            server.send_to(&r.to_vec().unwrap(), peer).await.unwrap();
        });
        let q = query("example.org", RecordType::A).to_vec().unwrap();
        let started = std::time::Instant::now();
        let r = forward_to(&q, &ups).await.expect("an answer");
        assert!(started.elapsed() < FORWARD_TIMEOUT + Duration::from_millis(500));
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(r.answers().len(), 1);
        // Nobody answers: None (the caller sends SERVFAIL), within the time limit.
        let started = std::time::Instant::now();
        assert!(forward_to(&q, &ups[..1]).await.is_none());
        assert!(started.elapsed() < FORWARD_TIMEOUT + Duration::from_millis(500));
    }

    #[test]
    fn reads_resolvers() {
        let r = parse_resolv_conf(
            "# x\nsearch a.b\nnameserver 10.0.0.2\nnameserver ::1\nnameserver fe80::1%eth0\n",
        );
        assert_eq!(
            r,
            vec!["10.0.0.2:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
