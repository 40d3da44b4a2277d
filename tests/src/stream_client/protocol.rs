//! The message formats of the Kubernetes streaming protocols (pure, no I/O), as client-go's
//! `tools/remotecommand` and `tools/portforward` and apimachinery's constants define them.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Exec/attach subprotocols, newest first (client-go `NewSPDYExecutor` sends all of them).
pub const EXEC_PROTOCOLS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// Port-forward over SPDY.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// Port-forward over WebSocket (kubelet's channel protocol for port-forward).
pub const PORT_FORWARD_WS_PROTOCOL: &str = "v4.channel.k8s.io";
/// KEP-4006: SPDY frames inside WebSocket binary messages.
pub const PORT_FORWARD_TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// SPDY stream header naming the stream's role, and its values (k8s.io/api/core/v1).
pub const STREAM_TYPE: &str = "streamtype";
pub const STREAM_ERROR: &str = "error";
pub const STREAM_STDIN: &str = "stdin";
pub const STREAM_STDOUT: &str = "stdout";
pub const STREAM_STDERR: &str = "stderr";
pub const STREAM_RESIZE: &str = "resize";
pub const STREAM_DATA: &str = "data";
pub const PORT_HEADER: &str = "port";
pub const REQUEST_ID_HEADER: &str = "requestid";

/// WebSocket channel numbers (apimachinery `remotecommand` constants).
pub const CH_STDIN: u8 = 0;
pub const CH_STDOUT: u8 = 1;
pub const CH_STDERR: u8 = 2;
pub const CH_ERROR: u8 = 3;
pub const CH_RESIZE: u8 = 4;
/// v5: `[255, channel]` closes our side of `channel`.
pub const CH_CLOSE: u8 = 255;

/// The version of the channel protocol the server chose, as far as this client cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExecVersion {
    V2,
    V3,
    V4,
    V5,
}

impl ExecVersion {
    pub fn from_protocol(p: &str) -> Result<ExecVersion> {
        Ok(match p {
            "v5.channel.k8s.io" => ExecVersion::V5,
            "v4.channel.k8s.io" => ExecVersion::V4,
            "v3.channel.k8s.io" => ExecVersion::V3,
            "v2.channel.k8s.io" => ExecVersion::V2,
            other => bail!(
                "server negotiated exec protocol {other:?}; this client speaks v2 to v5.channel.k8s.io"
            ),
        })
    }
}

/// A terminal size message (client-go `remotecommand.TerminalSize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Encodes a resize message like Go's `json.Encoder` (with its trailing newline).
pub fn resize_message(size: TerminalSize) -> Vec<u8> {
    let mut v = serde_json::to_vec(&size).unwrap_or_default();
    v.push(b'\n');
    v
}

#[derive(Debug, Deserialize)]
struct Status {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
    details: Option<StatusDetails>,
}

#[derive(Debug, Deserialize)]
struct StatusDetails {
    #[serde(default)]
    causes: Vec<StatusCause>,
}

#[derive(Debug, Deserialize)]
struct StatusCause {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// Turns what the error stream carried into an exit code, the way client-go's v4 decoder
/// does: empty or `Success` → 0, `Failure`/`NonZeroExitCode` → the `ExitCode` cause, any other
/// failure → an error with the server's message. v2/v3 carry plain text: non-empty is an error.
pub fn exit_code(version: ExecVersion, message: &[u8]) -> Result<i32> {
    if message.is_empty() {
        return Ok(0);
    }
    if version < ExecVersion::V4 {
        bail!(
            "error executing remote command: {}",
            String::from_utf8_lossy(message)
        );
    }
    let status: Status = serde_json::from_slice(message).with_context(|| {
        format!(
            "error stream protocol error: not a Status: {:?}",
            String::from_utf8_lossy(message)
        )
    })?;
    match status.status.as_str() {
        "Success" => Ok(0),
        "Failure" if status.reason == "NonZeroExitCode" => {
            let details = status
                .details
                .context("error stream protocol error: details must be set")?;
            let cause = details
                .causes
                .iter()
                .find(|c| c.reason == "ExitCode")
                .context("error stream protocol error: no ExitCode cause given")?;
            let code: u8 = cause.message.parse().with_context(|| {
                format!(
                    "error stream protocol error: invalid exit code value {:?}",
                    cause.message
                )
            })?;
            Ok(i32::from(code))
        }
        "Failure" => bail!("remote command failed: {}", status.message),
        other => bail!("error stream protocol error: unknown status {other:?}"),
    }
}

/// One WebSocket channel message: the channel byte, then the data.
pub fn channel_message(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(data.len() + 1);
    m.push(channel);
    m.extend_from_slice(data);
    m
}

/// Splits a received channel message; `None` for an empty message (no channel byte).
pub fn split_channel_message(m: &[u8]) -> Option<(u8, &[u8])> {
    m.split_first().map(|(c, rest)| (*c, rest))
}

/// Port-forward over WebSocket: each channel's first message starts with the port, 2 bytes
/// little endian.
pub fn parse_port_prefix(data: &[u8]) -> Result<(u16, &[u8])> {
    let Some((p, rest)) = data.split_first_chunk::<2>() else {
        bail!(
            "port-forward channel's first message is {} bytes, needs the 2-byte port",
            data.len()
        );
    };
    Ok((u16::from_le_bytes(*p), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_is_go_json() {
        let m = resize_message(TerminalSize {
            width: 80,
            height: 24,
        });
        assert_eq!(m, b"{\"Width\":80,\"Height\":24}\n");
    }

    #[test]
    fn exit_codes_from_status() {
        let v4 = ExecVersion::V4;
        assert_eq!(exit_code(v4, b"").expect("empty"), 0);
        assert_eq!(
            exit_code(v4, br#"{"metadata":{},"status":"Success"}"#).expect("ok"),
            0
        );
        let failure = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_code(v4, failure).expect("code"), 3);
        let other =
            br#"{"status":"Failure","message":"container not found","reason":"InternalError"}"#;
        let e = exit_code(v4, other).expect_err("failure");
        assert!(e.to_string().contains("container not found"));
        assert!(exit_code(ExecVersion::V2, b"boom").is_err());
        assert!(exit_code(v4, b"not json").is_err());
    }

    #[test]
    fn channel_framing() {
        assert_eq!(channel_message(CH_STDIN, b"ab"), vec![0, b'a', b'b']);
        assert_eq!(
            split_channel_message(&[2, 9]),
            Some((CH_STDERR, &[9u8][..]))
        );
        assert_eq!(split_channel_message(&[]), None);
        let (port, rest) = parse_port_prefix(&[0x50, 0x00, 1]).expect("port");
        assert_eq!((port, rest), (80, &[1u8][..]));
        assert!(parse_port_prefix(&[1]).is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(
            ExecVersion::from_protocol("v4.channel.k8s.io").expect("v4"),
            ExecVersion::V4
        );
        assert!(ExecVersion::from_protocol("channel.k8s.io").is_err());
    }
}
