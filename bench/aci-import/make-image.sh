#!/usr/bin/env bash
# Builds the benchmark ACI: about 200 MB and 10k files taken from this machine's /usr, gzip'd,
# with a valid manifest. Usage: make-image.sh OUT.aci [TARGET_MB] [TARGET_FILES]
set -euo pipefail
out=$1
target_mb=${2:-200}
target_files=${3:-10000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Regular files from /usr until both targets are reached.
find /usr/lib /usr/share /usr/bin -xdev -type f -printf '%s\t%p\n' 2>/dev/null > "$work/all" || true
# Two budgets so both targets are met together: small files (<= 32 KiB) up to the file count,
# then larger ones (<= 4 MiB) until the size target.
awk -F'\t' -v mb="$target_mb" -v n="$target_files" '
    { sub(/^\//, "", $2) }
    $1 <= 32768 && small < n { small += 1; size += $1; print $2; next }
    $1 > 32768 && $1 <= 4194304 && size + $1 <= mb * 1048576 * 0.8 { size += $1; print $2 }' "$work/all" > "$work/list"
mkdir -p "$work/rootfs"
cat > "$work/manifest" <<JSON
{"acKind":"ImageManifest","acVersion":"0.8.11","name":"tspod.dev/bench/usr","labels":[{"name":"version","value":"1.0.0"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
 "app":{"exec":["/bin/true"],"user":"0","group":"0"}}
JSON
tar -cf "$work/image.tar" -C "$work" manifest rootfs \
  -C / --transform 's,^usr/,rootfs/usr/,' --no-recursion -T "$work/list" 2>/dev/null
gzip -6 -c "$work/image.tar" > "$out"
echo "$out: $(du -m "$out" | cut -f1) MB gzip, $(( $(stat -c %s "$work/image.tar") / 1048576 )) MB tar, $(wc -l < "$work/list") files" >&2
