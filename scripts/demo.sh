#!/usr/bin/env bash
# The main job on the embedded demo image, from a fresh machine: installs and builds tspod
# (scripts/setup.sh), builds the demo ACI from fixtures/images/demo (busybox-static), signs it
# with a throw-away GnuPG key, trusts that key for the prefix tspod.dev/demo, fetches the image
# (the signature is verified), lists the store, then runs real pods (as root): the demo app, and
# two apps sharing a volume and a PID namespace.
# Everything lives under $TSPOD_DEMO_DIR (default /tmp/tspod-demo): your /var/lib/tspod and
# /etc/tspod are not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

demo=${TSPOD_DEMO_DIR:-/tmp/tspod-demo}
rm -rf "$demo"
mkdir -p "$demo"
tspod() { node bin/run.js --dir "$demo/data" --local-config "$demo/etc" --system-config "$demo/usr-lib" "$@"; }
step() { printf '\n\033[1m$ tspod %s\033[0m\n' "$*"; }

node fixtures/build-fixtures.js "$demo/images" gzip >/dev/null
aci="$demo/images/demo.aci"

export GNUPGHOME="$demo/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'tspod demo signer <demo@tspod.dev>' ed25519 sign never 2>/dev/null
gpg --batch --quiet --armor --export > "$demo/demo-key.asc"
gpg --batch --quiet --armor --detach-sign --output "$aci.asc" "$aci"

step trust --prefix tspod.dev/demo --skip-fingerprint-review demo-key.asc
tspod trust --prefix tspod.dev/demo --skip-fingerprint-review "$demo/demo-key.asc"
step fetch demo.aci
tspod fetch "$aci"
step image list
tspod image list
step run tspod.dev/demo:1.0.0
tspod run tspod.dev/demo:1.0.0
# Two apps in one pod: shared PID namespace and an empty volume, each app in its own rootfs.
writer='echo "written by the writer app at $(date +%T)" > /shared/note; sleep 1'
reader='sleep 0.5; echo "reader app sees: $(cat /shared/note)"; echo "processes in the pod: $(ls /proc | grep -c "^[0-9]")"'
step run --volume shared,kind=empty tspod.dev/demo:1.0.0 --name writer ... --- tspod.dev/demo:1.0.0 --name reader ...
tspod run --volume shared,kind=empty \
  tspod.dev/demo:1.0.0 --name writer --mount volume=shared,target=/shared --exec /bin/sh -- -c "$writer" --- \
  tspod.dev/demo:1.0.0 --name reader --mount volume=shared,target=/shared --exec /bin/sh -- -c "$reader"
step list
tspod list
gpgconf --kill gpg-agent 2>/dev/null || true
printf '\ndemo data is in %s (remove it with: rm -rf %s)\n' "$demo" "$demo"
