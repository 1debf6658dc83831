#!/usr/bin/env bash
# The main job on the embedded demo image, from a fresh machine: installs and builds tspod
# (scripts/setup.sh), builds the demo ACI from fixtures/images/demo (busybox-static), signs it
# with a throw-away GnuPG key, trusts that key for the prefix tspod.dev/demo, fetches the image
# (the signature is verified), lists the store and renders the image as a pod would see it.
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
step image render tspod.dev/demo:1.0.0 rendered
tspod image render tspod.dev/demo:1.0.0 "$demo/rendered"
echo "rendered rootfs: $(find "$demo/rendered/rootfs" | wc -l) entries; the app runs: $(jq -r '.app.exec | join(" ")' "$demo/rendered/manifest" 2>/dev/null || node -e 'console.log(require(process.argv[1]).app.exec.join(" "))' "$demo/rendered/manifest")"
gpgconf --kill gpg-agent 2>/dev/null || true
printf '\ndemo data is in %s (remove it with: rm -rf %s)\n' "$demo" "$demo"
