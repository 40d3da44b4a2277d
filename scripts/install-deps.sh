#!/usr/bin/env bash
# Installs the Debian packages that building berth and running its tests need.
# Idempotent and quick when everything is present: apt-get runs only for missing packages.
set -euo pipefail

# protobuf-compiler: builds; docker-registry, skopeo, busybox-static: test registry + images;
# apache2-utils: htpasswd (bcrypt) for the auth registry; containerd, runc: reference runtimes
# (runc and crun also serve as the runc/crun runtime handlers);
# containernetworking-plugins, nftables, iproute2: pod networking; openssl, jq: tooling;
# docker.io: the 20.10 docker CLI (/usr/bin/docker) the Docker API tests drive (its dockerd is
# only for the bench and must not run as a service: see below); docker-compose: compose 1.29
# (Debian's python3, not the SDK 7.x below) for the Docker networks test.
PACKAGES="protobuf-compiler docker-registry skopeo busybox-static containerd runc containernetworking-plugins nftables iptables iproute2 util-linux openssl jq apache2-utils crun docker.io docker-compose"

missing=()
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$p")
  fi
done

# The cgroup v2 test lane (../shared/tools/vm-lane.sh) boots qemu. On machines whose
# qemu-utils comes from bookworm-backports, qemu-system-x86 must come from there too (the
# stable one conflicts with it), so install it here from the same suite.
APT=(apt-get -o DPkg::Lock::Timeout=600)
LANE="$(dirname "$0")/../../shared/tools/vm-lane.sh"
if [ -e "$LANE" ] && ! command -v qemu-system-x86_64 >/dev/null && [ "$(id -u)" = 0 ]; then
  if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo; then
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      uri=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/debian.sources | head -n1 | awk '{print $2}')
      cat > /etc/apt/sources.list.d/bookworm-backports.sources <<SRC
Types: deb
URIs: ${uri:-http://deb.debian.org/debian}
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    echo "install-deps: installing qemu-system-x86 from bookworm-backports (vm lane)"
    "${APT[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends \
      -t bookworm-backports qemu-system-x86 kmod
  fi
fi

# PyPI `docker` 7.x: the Python SDK the Docker API tests drive.
install_python_sdk() {
  if python3 -c 'import docker, sys; sys.exit(int(docker.__version__.split(".")[0]) < 7)' 2>/dev/null; then
    return 0
  fi
  echo "install-deps: installing the Python docker SDK (PyPI docker 7.x)"
  # Debian's own python3 refuses pip installs into its site-packages (PEP 668) unless told.
  python3 -m pip install --quiet 'docker>=7,<8' ||
    python3 -m pip install --quiet --break-system-packages 'docker>=7,<8'
}

if [ ${#missing[@]} -eq 0 ]; then
  install_python_sdk
  echo "install-deps: all packages present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
# docker.io's maintainer scripts start dockerd (and enable it) through invoke-rc.d, which
# asks policy-rc.d first: exit 101 = "do not start services". A dockerd left running would
# own /run/docker.sock and iptables rules beside berth, so none starts during this install.
POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$POLICY"
  chmod 755 "$POLICY"
  own_policy=1
fi
trap '[ "$own_policy" = 1 ] && rm -f "$POLICY"' EXIT
"${APT[@]}" update -qq
DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}"
# The package also enables docker.service/docker.socket for the next boot (and socket
# activation): turn both off, and stop them where systemd runs. `systemctl disable` works
# without a running systemd (it edits the unit links). The bench starts its dockerd by hand.
if command -v systemctl >/dev/null && [ -e /lib/systemd/system/docker.service ]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now docker.socket docker.service >/dev/null 2>&1 || true
  else
    systemctl disable docker.socket docker.service >/dev/null 2>&1 || true
  fi
fi
install_python_sdk
echo "install-deps: done"
