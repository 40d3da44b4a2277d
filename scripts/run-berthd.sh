#!/usr/bin/env bash
# Sets up and runs berthd: installs the packages berth needs, builds it (release), installs the
# binary and the deploy files that are not there yet, then runs berthd in the foreground with its
# embedded default configuration (serving unix:///run/berth/berth.sock). Run as root.
#   scripts/run-berthd.sh            build, install, run
#   scripts/run-berthd.sh --systemd  build, install, and enable + start the systemd unit instead
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run-berthd.sh: run as root (berthd manages namespaces, mounts and cgroups)" >&2; exit 1; }
scripts/install-deps.sh
scripts/build-release.sh
install -m 0755 target/release/berthd /usr/local/bin/berthd
# The per-pod monitor and pod init, in a small binary berthd finds beside itself.
install -m 0755 target/release/berth-monitor /usr/local/bin/berth-monitor
install -m 0755 target/release/berth /usr/local/bin/berth
install -d /etc/berth
[ -e /etc/crictl.yaml ] || install -m 0644 deploy/crictl.yaml /etc/crictl.yaml
if [ "${1:-}" = "--systemd" ]; then
  [ -e /etc/berth/berth.toml ] || /usr/local/bin/berthd config default > /etc/berth/berth.toml
  install -m 0644 deploy/systemd/berthd.service /etc/systemd/system/berthd.service
  systemctl daemon-reload
  systemctl enable --now berthd
  systemctl --no-pager status berthd
else
  echo "+ berthd (embedded default config; Ctrl-C to stop)"
  exec /usr/local/bin/berthd
fi
