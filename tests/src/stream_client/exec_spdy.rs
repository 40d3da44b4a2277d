//! exec/attach over SPDY (client-go `remotecommand` streamProtocolV2..V5).

use super::protocol::{
    EXEC_PROTOCOLS, ExecVersion, STREAM_ERROR, STREAM_RESIZE, STREAM_STDERR, STREAM_STDIN,
    STREAM_STDOUT, STREAM_TYPE, exit_code, resize_message,
};
use super::upgrade::spdy_upgrade;
use super::{Closer, ExecOptions, GoEof, Interactive};
use anyhow::{Context, Result};
use berth_spdy::{Config, Session, Stream};
use http::{HeaderMap, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

pub(super) fn typed(kind: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(STREAM_TYPE, HeaderValue::from_static(kind));
    h
}

async fn open(session: &Session, kind: &'static str) -> Result<Stream> {
    session
        .open(typed(kind), false)
        .await
        .with_context(|| format!("creating the {kind} stream"))
}

pub(super) async fn start(url: &str, opts: ExecOptions) -> Result<Interactive> {
    let (io, chosen) = spdy_upgrade(url, &EXEC_PROTOCOLS).await?;
    let version = ExecVersion::from_protocol(&chosen)?;
    // client-go's SPDY executor pings every 5 s by default; keep-alive only.
    let session = berth_spdy::client(
        io,
        Config {
            ping_interval: Some(std::time::Duration::from_secs(5)),
            ..Config::default()
        },
    );
    // client-go's order: error, stdin, stdout, stderr (not with a tty), resize (tty, v3+).
    let mut error = open(&session, STREAM_ERROR).await?;
    let stdin = match opts.stdin {
        true => Some(open(&session, STREAM_STDIN).await?),
        false => None,
    };
    let stdout = match opts.stdout {
        true => Some(open(&session, STREAM_STDOUT).await?),
        false => None,
    };
    let stderr = match opts.stderr && !opts.tty {
        true => Some(open(&session, STREAM_STDERR).await?),
        false => None,
    };
    let resize = match opts.tty && version >= ExecVersion::V3 {
        true => Some(open(&session, STREAM_RESIZE).await?),
        false => None,
    };
    let resize = resize.map(|mut s| {
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(size) = rx.recv().await {
                if s.write_all(&resize_message(size)).await.is_err() {
                    break;
                }
            }
            let _ = s.shutdown().await;
        });
        tx
    });
    let exit = tokio::spawn(async move {
        let mut msg = Vec::new();
        GoEof(&mut error)
            .read_to_end(&mut msg)
            .await
            .context("reading the error stream")?;
        exit_code(version, &msg)
    });
    Ok(Interactive {
        stdin: stdin.map(|s| Box::new(s) as _),
        stdout: stdout.map(|s| Box::new(GoEof(s)) as _),
        stderr: stderr.map(|s| Box::new(GoEof(s)) as _),
        resize,
        protocol: chosen,
        exit,
        closer: Closer::Spdy(session),
    })
}
