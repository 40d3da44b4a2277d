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

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
APT=(apt-get -o DPkg::Lock::Timeout=600)
"${APT[@]}" update -qq
DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
