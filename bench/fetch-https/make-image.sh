#!/usr/bin/env bash
# Builds the benchmark ACI for bench/fetch-https: the busybox-static demo rootfs
# (fixtures/build-fixtures.js) plus 1 MiB filler files of text-like content (words drawn at random
# from a small vocabulary: compressible about 2-3x by gzip, like binaries and text in real images,
# but not trivially), gzip'd to about TARGET_MB, with a manifest named tspod.dev/bench/big.
# Usage: make-image.sh OUT.aci [TARGET_MB]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
target_mb=${2:-100}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

node fixtures/build-fixtures.js "$work/acis" none >/dev/null
mkdir -p "$work/image"
tar -xf "$work/acis/demo.aci" -C "$work/image" rootfs
cat > "$work/image/manifest" <<JSON
{"acKind":"ImageManifest","acVersion":"0.8.11","name":"tspod.dev/bench/big","labels":[{"name":"version","value":"1.0.0"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
 "app":{"exec":["/bin/true"],"user":"0","group":"0"}}
JSON

# The filler, from a fixed seed so every run builds the same bytes. A first sample tells the
# compression ratio, then enough files are written to reach the compressed target.
mkdir -p "$work/image/rootfs/data"
node - "$work/image/rootfs/data" "$target_mb" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const [dir, targetMb] = process.argv.slice(2);
let seed = 0x7470_6f64;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const letters = 'etaoinshrdlucmfwypvbgkjqxz';
const words = Array.from({ length: 4096 }, () => {
  const n = 2 + Math.floor(rand() * 9);
  let w = '';
  for (let i = 0; i < n; i++) w += letters[Math.floor(rand() ** 1.6 * letters.length)];
  return Buffer.from(`${w}${rand() < 0.1 ? '\n' : ' '}`);
});
const MiB = 1024 * 1024;
function file() {
  const b = Buffer.alloc(MiB);
  let o = 0;
  while (o < MiB) o += words[Math.floor(rand() ** 2 * words.length)].copy(b, o);
  return b;
}
const sample = Buffer.concat([file(), file(), file(), file()]);
const ratio = sample.length / zlib.gzipSync(sample, { level: 6 }).length;
const count = Math.ceil((Number(targetMb) * MiB * ratio) / MiB);
for (let i = 0; i < count; i++) fs.writeFileSync(path.join(dir, `part-${String(i).padStart(4, '0')}.txt`), file());
process.stderr.write(`filler: ${count} files of 1 MiB, gzip ratio about ${ratio.toFixed(2)}\n`);
JS

tar -cf "$work/image.tar" -C "$work/image" manifest rootfs
gzip -6 -c "$work/image.tar" > "$out"
echo "$out: $(( $(stat -c %s "$out") / 1048576 )) MB gzip, $(( $(stat -c %s "$work/image.tar") / 1048576 )) MB tar, $(find "$work/image/rootfs" | wc -l) entries" >&2
