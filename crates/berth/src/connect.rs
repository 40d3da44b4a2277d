//! Connecting to berthd: `unix:///path` (the default) or `http(s)://host:port`.

use anyhow::Context;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

pub async fn channel(host: &str) -> anyhow::Result<Channel> {
    if let Some(path) = host.strip_prefix("unix://") {
        let path = path.to_string();
        let shown = path.clone();
        return Endpoint::try_from("http://localhost")?
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .with_context(|| format!("cannot reach berthd at unix://{shown}: is it running? (scripts/run-berthd.sh starts it)"));
    }
    Endpoint::try_from(host.to_string())?
        .connect()
        .await
        .with_context(|| format!("cannot reach berthd at {host}"))
}
