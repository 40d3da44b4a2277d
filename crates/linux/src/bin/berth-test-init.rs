//! Stand-in for `berthd init`, so berth-linux's runtime tests can start containers without
//! berthd. berthd dispatches its hidden `init` subcommand to the same functions.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("init") if args.iter().any(|a| a == "--exec") => {
            berth_linux::runtime::exec_main(&args[1..])
        }
        Some("init") => berth_linux::runtime::init_main(&args[1..]),
        _ => {
            eprintln!("usage: berth-test-init init --bundle <dir> --id <id>");
            eprintln!(
                "       berth-test-init init --exec --pid <pid> --process <file> [--cgroup <path>] [--bundle <dir>]"
            );
            std::process::exit(2)
        }
    }
}
