//! Stand-in for `berthd pod-init`, so berth-linux's own tests can start pod inits without
//! berthd. Production uses berthd's hidden subcommand, which calls the same function.

fn main() {
    berth_linux::ns::init::pod_init_main()
}
