//! `berth-monitor`: the per-pod processes of berth in a small binary. berthd runs the pod
//! monitor (`monitor`), the pod init (`pod-init`) and, through the monitor, container inits
//! (`init`) with it when it is installed beside berthd: the same entry points berthd
//! dispatches, without the daemon's code, so each pod's long-lived processes cost less
//! memory (their relocated binary pages are most of their private memory). berth-linux's
//! own tests use it too.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rest = args.get(2..).unwrap_or_default();
    match args.get(1).map(String::as_str) {
        Some("monitor") => berth_linux::monitor::monitor_main(rest),
        Some("pod-init") => berth_linux::ns::init::pod_init_main(),
        Some("init") if rest.iter().any(|a| a == "--exec") => berth_linux::runtime::exec_main(rest),
        Some("init") => berth_linux::runtime::init_main(rest),
        _ => {
            eprintln!("usage: berth-monitor monitor|pod-init|init ... (run by berthd)");
            std::process::exit(2)
        }
    }
}
