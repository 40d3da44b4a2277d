//! berth: a docker-like CLI for people, over berthd's CRI socket.

mod connect;
mod info;

use anyhow::Context;
use berth_api::cri::{
    ImageFilter, ImageSpec, ImageStatusRequest, ListImagesRequest, PullImageRequest,
    RemoveImageRequest, StatusRequest, VersionRequest,
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "berth: run and manage containers through berthd"
)]
struct Cli {
    /// berthd endpoint.
    #[arg(
        long,
        short = 'H',
        env = "BERTH_HOST",
        default_value = "unix:///run/berth/berth.sock"
    )]
    host: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show client and berthd versions.
    Version,
    /// Show berthd's health, runtime handlers and effective configuration.
    Info {
        /// Print Status' verbose info as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pull an image from a registry.
    Pull { image: String },
    /// List images.
    Images {
        /// Only this image (name or id).
        image: Option<String>,
        /// Print only image ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove one or more images (by name, tag, digest or id).
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let channel = connect::channel(&cli.host).await?;
    let mut rt = berth_api::cri::runtime_service_client::RuntimeServiceClient::new(channel.clone());
    let mut img = berth_api::cri::image_service_client::ImageServiceClient::new(channel);
    match cli.command {
        Command::Version => {
            let v = rt.version(VersionRequest::default()).await?.into_inner();
            println!("Client:  berth {}", env!("CARGO_PKG_VERSION"));
            println!(
                "Server:  {} {} (CRI {})",
                v.runtime_name, v.runtime_version, v.runtime_api_version
            );
        }
        Command::Info { json } => {
            let s = rt
                .status(StatusRequest { verbose: true })
                .await
                .map_err(status_err)?
                .into_inner();
            info::print(&s, json)?;
        }
        Command::Pull { image } => {
            let r = img
                .pull_image(PullImageRequest {
                    image: Some(spec(&image)),
                    ..Default::default()
                })
                .await
                .map_err(status_err)?
                .into_inner();
            println!("{}", r.image_ref);
        }
        Command::Images { image, quiet } => {
            let filter = image.map(|i| ImageFilter {
                image: Some(spec(&i)),
            });
            let list = img
                .list_images(ListImagesRequest { filter })
                .await
                .map_err(status_err)?
                .into_inner()
                .images;
            if !quiet {
                println!(
                    "{:<50} {:<20} {:<15} {:>10}",
                    "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
                );
            }
            for i in list {
                let short =
                    i.id.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect::<String>();
                if quiet {
                    println!("{short}");
                    continue;
                }
                let names: Vec<(String, String)> = if i.repo_tags.is_empty() {
                    vec![("<none>".into(), "<none>".into())]
                } else {
                    i.repo_tags
                        .iter()
                        .map(|t| match t.rsplit_once(':') {
                            Some((r, tag)) if !tag.contains('/') => {
                                (r.to_string(), tag.to_string())
                            }
                            _ => (t.clone(), "<none>".into()),
                        })
                        .collect()
                };
                for (repo, tag) in names {
                    println!("{repo:<50} {tag:<20} {short:<15} {:>10}", human(i.size));
                }
            }
        }
        Command::Rmi { images } => {
            for name in images {
                let found = img
                    .image_status(ImageStatusRequest {
                        image: Some(spec(&name)),
                        verbose: false,
                    })
                    .await
                    .map_err(status_err)?
                    .into_inner()
                    .image;
                let Some(found) = found else {
                    anyhow::bail!("no such image: {name}");
                };
                img.remove_image(RemoveImageRequest {
                    image: Some(spec(&name)),
                })
                .await
                .map_err(status_err)
                .with_context(|| format!("removing {name}"))?;
                println!("Deleted: {}", found.id);
            }
        }
    }
    Ok(())
}

fn spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

fn status_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}
