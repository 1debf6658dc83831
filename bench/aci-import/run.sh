#!/usr/bin/env bash
# bench/aci-import: `tspod fetch` + `tspod image render` of a ~200 MB / 10k-file ACI, next to
# `tar -xzf` + `sha512sum` of the same file, paired in one hyperfine run, on tmpfs (/dev/shm):
# the root ext4 here has no journal and punishes create-after-delete (shared/docs/peers.md).
# Prints both medians and the ratio. Needs: hyperfine, a built tspod (npm run build).
# Usage: bench/aci-import/run.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-7}
work=${BENCH_DIR:-/dev/shm/tspod-bench-aci}
rm -rf "$work"
mkdir -p "$work"
aci="$work/usr.aci"
bash bench/aci-import/make-image.sh "$aci"
tspod="node $PWD/bin/run.js --dir $work/store --local-config $work/etc --system-config $work/sys"
hyperfine --runs "$runs" --warmup 1 --export-json "$work/result.json" \
  --prepare "rm -rf $work/store $work/out $work/tar-out; mkdir -p $work/tar-out" \
  -n 'tspod fetch + image render' "$tspod fetch --insecure-options=image $aci >/dev/null 2>&1 && $tspod image render --rootfs-only tspod.dev/bench/usr $work/out" \
  -n 'tar -xzf + sha512sum' "tar -xzf $aci -C $work/tar-out && sha512sum $aci >/dev/null"
node -e '
  const r = require(process.argv[1]).results;
  const [t, peer] = r.map((x) => x.median);
  console.log(`tspod fetch + render: ${t.toFixed(3)} s median; tar -xzf + sha512sum: ${peer.toFixed(3)} s median; ratio ${(t / peer).toFixed(2)} (target <= 1.2)`);
' "$work/result.json"
rm -rf "$work"
