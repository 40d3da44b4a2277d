#!/usr/bin/env bash
# Installs the Debian packages that building berth and running its tests need.
# Idempotent and quick when everything is present: apt-get runs only for missing packages.
set -euo pipefail

# protobuf-compiler: builds; docker-registry, skopeo, busybox-static: test registry + images;
# apache2-utils: htpasswd (bcrypt) for the auth registry; containerd, runc: reference runtimes
# (runc and crun also serve as the runc/crun runtime handlers);
# containernetworking-plugins, nftables, iproute2: pod networking; openssl, jq: tooling.
PACKAGES="protobuf-compiler docker-registry skopeo busybox-static containerd runc containernetworking-plugins nftables iptables iproute2 util-linux openssl jq apache2-utils crun"

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

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
"${APT[@]}" update -qq
DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
