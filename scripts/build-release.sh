#!/usr/bin/env bash
# Release build of what a node runs: berthd, the berth CLI, and the per-pod `berth-monitor`
# (monitor, pod init and container init). Used by run-berthd.sh and bench.sh.
#
# berth-monitor is linked as a static, non-PIE executable: no dynamic loader, no libc.so, and
# no load-time relocations, which in a PIE dirty the binary's data pages privately in every
# process. With a monitor and a pod init per pod that is most of a pod's memory: PSS per
# pod 0.50 MB instead of 1.18 MB at 10 pods (BENCHMARKS.md, issue 12 part 3). It uses
# nothing from glibc that a static link breaks (no NSS lookups, no dlopen). `cargo rustc` applies the flags to the
# binary's own crate only; the rest of the workspace stays as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "+ cargo build --release -p berthd -p berth"
cargo build --release -p berthd -p berth
echo "+ cargo rustc --release -p berth-linux --bin berth-monitor (static, non-PIE)"
cargo rustc --release -p berth-linux --bin berth-monitor -- \
  -C target-feature=+crt-static -C relocation-model=static
