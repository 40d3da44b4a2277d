#!/usr/bin/env bash
# Kubernetes CRI conformance: runs critest (../shared/tools/cri-rig, see its README) against a
# fresh berthd built from this tree, with its own root dir, run dir, socket, bridge and subnet,
# then stops it, removes whatever it left and compares the result with the specs that must pass
# (tests/conformance/critest-pass.txt, one full ginkgo spec text per line).
#
# Exit status: 0 when every listed spec passed (or the rig is absent), 1 when a listed spec failed
# or did not run, or something was left behind. Specs that pass but are not listed are printed:
# add them to the list in the same commit.
#
# Env: SHARED_TOOLS where cri-rig/ and leakcheck.sh are (default: ../shared/tools)
#      BERTHD_BIN   berthd binary to test (default: cargo build -p berthd, and berth-monitor beside it)
#      CRITEST_OUT  where critest's logs and report go (default: a dir under the run's temp dir, kept)
#      CRITEST_ARGS extra critest arguments (e.g. "-ginkgo.focus Streaming"; a partial run also
#                   reports the listed specs that did not run)
# Runs as root. One run per host at a time: the whole run holds /tmp/critest.lock (critest binds
# host ports 12000-12003, and this script uses a fixed bridge name).
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED_TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
RIG="$SHARED_TOOLS/cri-rig"
LEAKCHECK="$SHARED_TOOLS/leakcheck.sh"
PASS_LIST="$ROOT/tests/conformance/critest-pass.txt"
BRIDGE=berthcrit0
SUBNET=10.87.0.0/16

if [ ! -x "$RIG/run-critest.sh" ]; then
  echo "conformance: $RIG not found; skipping critest"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "conformance: run as root" >&2; exit 1; }

# Hold the lock for the whole run (re-exec under flock once).
if [ "${BERTH_CONFORMANCE_LOCKED:-}" != 1 ]; then
  export BERTH_CONFORMANCE_LOCKED=1
  exec flock /tmp/critest.lock "$0" "$@"
fi

if [ -n "${BERTHD_BIN:-}" ]; then
  BIN=$BERTHD_BIN
else
  echo "+ cargo build -p berthd --bin berthd; cargo build -p berth-linux --bin berth-monitor"
  cargo build -q -p berthd --bin berthd || exit 1
  cargo build -q -p berth-linux --bin berth-monitor || exit 1
  TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
  BIN=$TARGET_DIR/debug/berthd
fi
[ -x "$BIN" ] || { echo "conformance: berthd binary $BIN not found" >&2; exit 1; }

TMP=$(mktemp -d /tmp/berth-conformance-XXXXXX)
SOCK=$TMP/run/berth.sock
EP=unix://$SOCK
CRICTL=$RIG/bin/crictl
export CRITEST_OUT=${CRITEST_OUT:-$TMP/critest}
LOG=$CRITEST_OUT/berthd.log
mkdir -p "$TMP/run" "$CRITEST_OUT"

# The rig's config (mirrors, pause image) with this run's paths, bridge and subnet.
PORT=${CRI_RIG_PORT:-5000}
{
  printf 'root_dir = "%s"\nrun_dir = "%s"\n' "$TMP/root" "$TMP/run"
  sed "s/127.0.0.1:5000/127.0.0.1:$PORT/g" "$RIG/berthd-rig.toml"
  printf '\n[grpc]\nsocket = "%s"\nshutdown_grace_secs = 5\n' "$SOCK"
  printf '\n[docker]\nsocket = "%s"\n' "$TMP/run/docker.sock"
  printf '\n[network]\nbridge = "%s"\nsubnet = "%s"\n' "$BRIDGE" "$SUBNET"
} >"$TMP/berth.toml"
"$BIN" --config "$TMP/berth.toml" config check >/dev/null || { echo "conformance: bad generated config $TMP/berth.toml" >&2; exit 1; }

leaks_before=$( [ -x "$LEAKCHECK" ] && "$LEAKCHECK" 2>/dev/null | grep '^leak:' | sort)

echo "+ berthd --config $TMP/berth.toml (log $LOG)"
"$BIN" --config "$TMP/berth.toml" >"$LOG" 2>&1 &
BERTHD_PID=$!

crictl() { "$CRICTL" --runtime-endpoint "$EP" --image-endpoint "$EP" --timeout 30s "$@"; }

stop_berthd() {
  [ -n "${BERTHD_PID:-}" ] || return 0
  # Pods first (their monitors, mounts, netns, veths and cgroups), then the daemon.
  for p in $(crictl pods -q 2>/dev/null); do
    crictl stopp "$p" >/dev/null 2>&1
    crictl rmp -f "$p" >/dev/null 2>&1
  done
  kill -TERM "$BERTHD_PID" 2>/dev/null
  for _ in $(seq 1 150); do kill -0 "$BERTHD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$BERTHD_PID" 2>/dev/null
  wait "$BERTHD_PID" 2>/dev/null
  BERTHD_PID=
}

# Whatever the pods or berthd left: mounts under the temp dir, the bridge and its nft table.
clean_host() {
  awk '{print $5}' /proc/self/mountinfo | grep "^$TMP/" | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
  ip link del "$BRIDGE" 2>/dev/null
  nft delete table inet "berth-$BRIDGE" 2>/dev/null
}

cleanup() {
  stop_berthd
  clean_host
  if awk '{print $5}' /proc/self/mountinfo | grep -q "^$TMP/"; then
    echo "conformance: mounts remain under $TMP; not removing it" >&2
  else
    # Keep critest's output and berthd's log (CRITEST_OUT).
    case $CRITEST_OUT in
      "$TMP"/*) find "$TMP" -mindepth 1 -maxdepth 1 ! -path "$CRITEST_OUT" -exec rm -rf {} + ;;
      *) rm -rf "$TMP" ;;
    esac
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2086
"$RIG/run-critest.sh" "$EP" ${CRITEST_ARGS:-} | tee "$TMP/summary.out"
kill -0 "$BERTHD_PID" 2>/dev/null || echo "conformance: berthd died during the run; log $LOG" >&2

stop_berthd
clean_host

rc=0
# Leaks: what leakcheck lists now and did not list before the run, among names of this run
# (its temp dir, bridge, table) and default-parent pod cgroups (berth/berth-<id>).
if [ -x "$LEAKCHECK" ]; then
  new_leaks=$(comm -13 <(echo "$leaks_before") <("$LEAKCHECK" 2>/dev/null | grep '^leak:' | sort) |
    grep -E "$TMP|$BRIDGE|cgroup: .*/berth(\.slice)?/berth-" || true)
  if [ -n "$new_leaks" ]; then
    echo "conformance: left behind by the run:"; echo "$new_leaks"; rc=1
  else
    echo "conformance: leak check clean"
  fi
fi

python3 - "$CRITEST_OUT/report.json" "$PASS_LIST" <<'PY' || rc=1
import json, sys
report, pass_list = sys.argv[1], sys.argv[2]
try:
    suites = json.load(open(report))
except Exception as e:
    print(f"conformance: no critest report {report}: {e}"); sys.exit(1)
state = {}
for suite in suites:
    for r in suite.get("SpecReports") or []:
        if r.get("LeafNodeType") != "It":
            continue
        name = " ".join(list(r.get("ContainerHierarchyTexts") or []) + [r.get("LeafNodeText", "")])
        state[name] = r.get("State")
want = [l.strip() for l in open(pass_list) if l.strip() and not l.startswith("#")]
bad = [n for n in want if state.get(n) != "passed"]
new = sorted(n for n, s in state.items() if s == "passed" and n not in want)
for n in bad:
    print(f"REGRESSION ({state.get(n) or 'did not run'}): {n}")
for n in new:
    print(f"NEWLY PASSING (add it to tests/conformance/critest-pass.txt): {n}")
print(f"conformance: {len(want) - len(bad)}/{len(want)} listed specs passed, {len(new)} newly passing")
sys.exit(1 if bad else 0)
PY
echo "conformance: critest output in $CRITEST_OUT, berthd log $LOG"
exit $rc
