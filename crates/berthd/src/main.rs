//! berthd: the berth CRI node agent.

mod docker;
mod listen;
mod lock;
mod logging;
mod metrics;
mod ports;
mod reset;
mod rpc_trace;
mod server;
mod shutdown;

use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_core::config::{Config, DEFAULT_TOML};
use clap::{Parser, Subcommand};

/// Where berthd looks for its config when --config is not given.
const DEFAULT_CONFIG_PATH: &str = "/etc/berth/berth.toml";

#[derive(Parser)]
#[command(name = "berthd", version, about = "berth: a Kubernetes CRI runtime")]
struct Cli {
    /// Config file (TOML). Default: /etc/berth/berth.toml if it exists, else built-in defaults.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the CRI (the default).
    Run,
    /// Remove berth's bridge, its nft table and pods' network leftovers and namespace pins
    /// (refused while a berthd runs on the same root or run dir).
    Reset,
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        what: ConfigCmd,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the documented default configuration.
    Default,
    /// Validate the configuration and print it as berthd will use it.
    Check,
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Config::from_toml(&text, &path.display().to_string())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Config::default()),
        Err(e) => Err(e).with_context(|| format!("reading config {}", path.display())),
    }
}

fn main() -> std::process::ExitCode {
    // The pod init (PID 1 of a pod's PID namespace) is berthd re-executed; it must fork
    // before any thread exists, so it is dispatched before argument parsing and runtimes.
    // So are the per-pod monitor and the container init (`runc init`'s counterpart).
    let args: Vec<String> = std::env::args().collect();
    let rest = args.get(2..).unwrap_or_default();
    match args.get(1).map(String::as_str) {
        Some("pod-init") => berth_linux::ns::init::pod_init_main(),
        Some("monitor") => berth_linux::monitor::monitor_main(rest),
        Some("init") if rest.iter().any(|a| a == "--exec") => berth_linux::runtime::exec_main(rest),
        Some("init") => berth_linux::runtime::init_main(rest),
        _ => {}
    }
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Config {
            what: ConfigCmd::Default,
        } => {
            print!("{DEFAULT_TOML}");
            Ok(())
        }
        Command::Config {
            what: ConfigCmd::Check,
        } => {
            let cfg = load_config(cli.config.as_deref())?;
            print!(
                "{}",
                toml::to_string_pretty(&cfg).context("rendering config")?
            );
            Ok(())
        }
        Command::Reset => reset::run(&load_config(cli.config.as_deref())?),
        Command::Run => {
            let cfg = load_config(cli.config.as_deref())?;
            logging::init(&cfg.log)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("berthd")
                .build()
                .context("starting the async runtime")?;
            rt.block_on(server::run(cfg))
        }
    }
}
