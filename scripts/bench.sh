#!/usr/bin/env bash
# Bench: berthd (release) against the Debian containerd, side by side, same local registry;
# `docker`: berthd's Docker API against Debian's dockerd (its own containerd + runc).
# Usage: scripts/bench.sh [PHASE] [OPTIONS]   (default: pull; see `bench --help`)
#   e.g. scripts/bench.sh pull --iterations 5 --logs /tmp/bench-logs
# Needs root. Prints a table; exits non-zero only on errors, not on a missed target.
set -euo pipefail

cd "$(dirname "$0")/.."
SHARED_TOOLS="$(pwd)/../shared/tools"
# A worktree under /work/wt/<name> finds the shared tools one level further up.
[ -d "$SHARED_TOOLS" ] || SHARED_TOOLS="$(pwd)/../../shared/tools"

step() { echo; echo "==> $*"; }

step "scripts/install-deps.sh"
scripts/install-deps.sh

step "scripts/build-release.sh, cargo build --release (bench)"
scripts/build-release.sh
cargo build --release -p berth-tests --bin bench

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
export BERTHD_BIN="$TARGET_DIR/release/berthd"

[ $# -eq 0 ] && set -- pull
step "cargo run --release -p berth-tests --bin bench -- $*"
cargo run --release -q -p berth-tests --bin bench -- "$@"

if [ -x "$SHARED_TOOLS/leakcheck.sh" ]; then
  step "leak check"
  "$SHARED_TOOLS/leakcheck.sh"
fi
