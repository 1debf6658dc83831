#!/usr/bin/env bash
# bench/pull: pull + unpack of a large three-layer OCI image (make-image.sh: ~80 MB gzip, ~220 MB
# and ~11k files unpacked) from Debian's docker-registry on a loopback port, paired in one
# hyperfine run:
#   - tspod:  `tspod fetch --insecure-options=image,http docker://127.0.0.1:PORT/bench/big:1` into
#             an empty store (download, verify, decompress, apply the layers, convert, store);
#   - peers:  `skopeo copy docker://... oci:DIR:1` then `umoci unpack --image DIR:1 BUNDLE`;
#   - floor:  `gzip -dc` of the three layer blobs to /dev/null (decompression alone).
# Everything (registry storage, stores, bundles) is on the same filesystem: tmpfs by default, or
# a journaled ext4 loop file with BENCH_FS=ext4 (this machine's root ext4 has no journal and
# punishes create-after-delete, ../shared/docs/peers.md §1). The script builds the image when
# missing, starts and stops its own registry, and unmounts what it mounted.
# Needs: hyperfine, skopeo, umoci, docker-registry (Debian), a built tree (dist/).
# Usage: bench/pull/run.sh [RUNS]     env: BENCH_DIR (default /dev/shm/tspod-bench-pull), BENCH_FS=tmpfs|ext4
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
base=${BENCH_DIR:-/dev/shm/tspod-bench-pull}
fs_kind=${BENCH_FS:-tmpfs}
mkdir -p "$base"
layout="$base/layout"
[ -f "$layout/index.json" ] || bench/pull/make-image.sh "$layout" 1

work="$base/run"
registry_pid=
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
  if mountpoint -q "$work" 2>/dev/null; then umount "$work"; fi
  rm -rf "$work" "$base/ext4.img"
}
trap cleanup EXIT
cleanup
mkdir -p "$work"
if [ "$fs_kind" = ext4 ]; then
  # A journaled ext4 on a loop file (in tmpfs, so the disk under it does not add noise).
  truncate -s 2G "$base/ext4.img"
  mkfs.ext4 -q -F -O has_journal "$base/ext4.img"
  mount -o loop "$base/ext4.img" "$work"
fi

# The registry: no auth, plain http, storage on the bench filesystem (as test/support/registry.ts).
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/storage
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
ref="127.0.0.1:$port/bench/big:1"
skopeo copy -q --dest-tls-verify=false "oci:$layout:1" "docker://$ref"

tspod="node $PWD/bin/run.js --dir $work/store --local-config $work/etc --system-config $work/sys"
tspod_cmd="$tspod fetch --insecure-options=image,http docker://$ref >/dev/null 2>$work/tspod.err"
peer_cmd="skopeo copy -q --src-tls-verify=false docker://$ref oci:$work/peer/layout:1 \
&& umoci unpack --image $work/peer/layout:1 $work/peer/bundle >/dev/null"
layers=$(node -e '
  const fs = require("fs"); const dir = process.argv[1];
  const idx = JSON.parse(fs.readFileSync(dir + "/index.json"));
  const blob = (d) => dir + "/blobs/sha256/" + d.slice(7);
  const m = JSON.parse(fs.readFileSync(blob(idx.manifests[0].digest)));
  console.log(m.layers.map((l) => blob(l.digest)).join(" "));' "$layout")
floor_cmd="for b in $layers; do gzip -dc \$b; done >/dev/null"
prepare="rm -rf $work/store $work/peer; mkdir -p $work/peer"

# Both halves must work once before they are timed; tspod must leave the image in its store.
eval "$prepare"
eval "$peer_cmd" || { echo "bench/pull: skopeo copy + umoci unpack failed" >&2; exit 1; }
eval "$prepare"
if ! eval "$tspod_cmd"; then
  echo "bench/pull: tspod fetch failed:" >&2
  sed 's/^/  /' "$work/tspod.err" >&2
  exit 1
fi
$tspod image list --json 2>/dev/null | grep -q "bench/big" || { echo "bench/pull: tspod fetch exited 0 but the image is not in the store" >&2; exit 1; }

hyperfine --runs "$runs" --warmup 1 --export-json "$work/result.json" --prepare "$prepare" \
  -n 'tspod fetch' "$tspod_cmd" \
  -n 'skopeo copy + umoci unpack' "$peer_cmd" \
  -n 'gzip -dc (floor)' "$floor_cmd"

node -e '
  const [file, mb, fsKind] = process.argv.slice(1);
  const r = Object.fromEntries(require(file).results.map((x) => [x.command, x.median]));
  const t = r["tspod fetch"], p = r["skopeo copy + umoci unpack"], g = r["gzip -dc (floor)"];
  console.log(`image: ${mb} MB compressed, 3 gzip layers, loopback docker-registry, output on ${fsKind}`);
  for (const [k, v] of Object.entries(r)) console.log(`${k.padEnd(28)} ${v.toFixed(3)} s median`);
  console.log(`speed-up skopeo+umoci / tspod: ${(p / t).toFixed(2)}x (target >= 4x)`);
  console.log(`tspod / gzip floor: ${(t / g).toFixed(2)}`);
' "$work/result.json" "$(du -smc $layers | tail -1 | cut -f1)" "$fs_kind"
