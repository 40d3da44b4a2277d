//! Stand-in for berthd's hidden `monitor` and `init` subcommands, so berth-linux's own
//! tests can run pod monitors and containers without berthd. Production berthd dispatches
//! the same functions.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rest = args.get(2..).unwrap_or_default();
    match args.get(1).map(String::as_str) {
        Some("monitor") => berth_linux::monitor::monitor_main(rest),
        Some("init") if rest.iter().any(|a| a == "--exec") => berth_linux::runtime::exec_main(rest),
        Some("init") => berth_linux::runtime::init_main(rest),
        _ => {
            eprintln!("usage: berth-monitor monitor|init ...");
            std::process::exit(2)
        }
    }
}
