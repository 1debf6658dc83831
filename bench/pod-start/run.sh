#!/usr/bin/env bash
# bench/pod-start: `tspod run` of a 1-app pod running /bin/true from the busybox-static demo
# image, and of a 3-app pod, next to crun, runc and systemd-nspawn on the same rootfs, paired in
# one hyperfine run. Prints medians and ratios, then the resident memory of one running pod's
# supervision processes (tspod run + stage1 init; the app itself excluded).
# Needs root, hyperfine, runc, crun, systemd-container (Debian) and a built tree (scripts/setup.sh).
# Peer workarounds from ../shared/docs/peers.md: crun refuses hybrid cgroups unless the v2
# controller list is hidden (bind-mounted empty file in a private mount namespace); nspawn needs
# /usr and /etc/os-release in the tree, --register=no --keep-unit, and a tmpfs on
# /run/systemd/nspawn.
# Usage: bench/pod-start/run.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-20}
work=${BENCH_DIR:-/dev/shm/tspod-bench-start}
rm -rf "$work"
mkdir -p "$work"
tspod="node $PWD/bin/run.js --dir $work/data --local-config $work/etc --system-config $work/usr-lib"

node fixtures/build-fixtures.js "$work/acis" gzip >/dev/null
$tspod fetch --insecure-options=image "$work/acis/demo.aci" >/dev/null 2>&1
# The same rootfs for every peer: the rendered demo image.
$tspod image render --rootfs-only tspod.dev/demo:1.0.0 "$work/rootfs" >/dev/null
mkdir -p "$work/rootfs/usr" "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/dev"
touch "$work/rootfs/etc/os-release"
# Warm the tree cache: tspod renders an image once.
$tspod run --insecure-options=image tspod.dev/demo:1.0.0 --exec /bin/true >/dev/null 2>&1

# OCI bundle for crun and runc (rootless: false, no terminal, /bin/true).
mkdir -p "$work/bundle"
(cd "$work/bundle" && runc spec)
node -e '
  const f = process.argv[1]; const c = JSON.parse(require("fs").readFileSync(f));
  c.root = { path: process.argv[2], readonly: true }; c.process.terminal = false; c.process.args = ["/bin/true"];
  require("fs").writeFileSync(f, JSON.stringify(c));' "$work/bundle/config.json" "$work/rootfs"
touch "$work/empty"
crun_run="unshare -m sh -c 'mount --bind $work/empty /sys/fs/cgroup/unified/cgroup.controllers && crun run -b $work/bundle b\$\$ >/dev/null'"
mkdir -p /run/systemd/nspawn && (mountpoint -q /run/systemd/nspawn || mount -t tmpfs tmpfs /run/systemd/nspawn)

three="tspod.dev/demo:1.0.0 --name a --exec /bin/true tspod.dev/demo:1.0.0 --name b --exec /bin/true tspod.dev/demo:1.0.0 --name c --exec /bin/true"
hyperfine --runs "$runs" --warmup 2 --export-json "$work/result.json" \
  -n 'tspod run (1 app)' "$tspod run --insecure-options=image --net=host tspod.dev/demo:1.0.0 --exec /bin/true" \
  -n 'tspod run (3 apps)' "$tspod run --insecure-options=image --net=host $three" \
  -n 'crun run' "$crun_run" \
  -n 'runc run' "runc run -b $work/bundle r\$\$ >/dev/null" \
  -n 'systemd-nspawn' "systemd-nspawn -q --register=no --keep-unit -D $work/rootfs /bin/true"

node -e '
  const r = require(process.argv[1]).results; const m = Object.fromEntries(r.map((x) => [x.command, x.median * 1000]));
  for (const [k, v] of Object.entries(m)) console.log(`${k.padEnd(20)} ${v.toFixed(1)} ms median`);
  const t = m["tspod run (1 app)"];
  for (const peer of ["crun run", "runc run", "systemd-nspawn"]) console.log(`tspod 1-app / ${peer}: ${(t / m[peer]).toFixed(2)}`);
  console.log(`target: tspod 1-app <= 1.3 x systemd-nspawn`);
' "$work/result.json"

# Memory of one running pod's supervision processes (tspod run + the stage1 init; the app, sleep,
# excluded): RSS counts the Node binary's shared text in each process; PSS shares it out; USS
# (private pages) is what one more running pod costs.
$tspod run --insecure-options=image --net=host tspod.dev/demo:1.0.0 --exec /bin/sleep -- 3 >/dev/null 2>&1 &
sleep 2
pids=$(ps -eo pid=,args= | awk -v dir="$work/data" '$0 ~ dir && ($0 ~ /bin\/run.js/ || $0 ~ /stage1\/init.js/) { print $1 }')
for pid in $pids; do cat "/proc/$pid/smaps_rollup"; done | awk '
  /^Rss:/ { rss += $2 } /^Pss:/ { pss += $2 } /^Private_(Clean|Dirty):/ { uss += $2 }
  END { printf "memory of one running pod (tspod run + stage1 init): RSS %d MB, PSS %d MB, USS %d MB (target <= 15 MB)\n", rss / 1024, pss / 1024, uss / 1024 }'
wait
rm -rf "$work"
