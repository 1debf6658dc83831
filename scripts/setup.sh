#!/usr/bin/env bash
# Installs everything tspod and its tests need on a fresh Debian/Ubuntu machine, then builds.
# Idempotent: Debian packages already present are not reinstalled; `npm ci` runs only when
# package-lock.json is newer than the installed node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  appc-spec        # actool: builds the fixture ACIs, reference validator in tests
  busybox-static   # the demo image's userland
  gnupg            # keys and signatures in tests and the demo
  gpg-wks-client   # WKD hashes to check src/discovery against (tests)
  dnsmasq-base     # a real DNS server on loopback for the discovery and resolver tests
  iptables nftables              # masquerading and --port forwarding of pod networks (both backends tested)
  containernetworking-plugins    # named pod networks (CNI bridge + host-local)
  iproute2         # tests read links and addresses with ip
  gcc libc6-dev    # tests build a static sd_notify sender for the systemd pass-through test
  docker-registry skopeo umoci   # OCI tests: a real registry on loopback, images pushed and unpacked by the peers
  apache2-utils    # htpasswd for the registry's basic-auth test
  zstd             # zstd-compressed OCI layers (tspod streams them through the zstd binary)
  xz-utils bzip2   # .aci compressed with xz / bzip2 (tspod calls the system tools)
  openssl          # test CA and certificates for HTTPS tests
  ca-certificates
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root (sudo) to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
