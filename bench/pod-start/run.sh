#!/usr/bin/env bash
# bench/pod-start: `tspod run` of a 1-app pod running /bin/true from the busybox-static demo
# image, and of a 3-app pod, next to crun, runc and systemd-nspawn on the same rootfs, paired in
# one hyperfine run; then the 3-app pod on tspod's default network next to crun and runc with
# CNI (peer-cni.sh), and the network setup alone (net-setup.mjs). Prints medians and ratios, then the resident memory of one running pod's
# supervision processes (tspod run + stage1 init; the app itself excluded).
# Needs root, hyperfine, runc, crun, systemd-container, containernetworking-plugins, iptables
# (Debian) and a built tree (scripts/setup.sh).
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
# The bench's own default network (any pod without --net joins it), never the user's tspod0.
mkdir -p "$work/etc/net.d"
cat >"$work/etc/net.d/default.conf" <<'CONF'
{ "cniVersion": "0.4.0", "name": "default", "type": "bridge", "bridge": "tspbench0", "isGateway": true, "ipMasq": true,
  "ipam": { "type": "host-local", "subnet": "10.253.0.0/16" } }
CONF

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

# --- Networked 3-app pods (issue 7): tspod on its default network (set up directly through
# netlink) next to crun and runc with CNI (Debian's bridge + host-local plugins, ipMasq), each
# with its own bridge and subnet (never the user's tspod0), then the network part alone.
if [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ]; then
  cat >"$work/cni.conf" <<CONF
{ "cniVersion": "0.4.0", "name": "benchcni", "type": "bridge", "bridge": "tspbench1", "isGateway": true, "ipMasq": true,
  "ipam": { "type": "host-local", "subnet": "10.252.0.0/16", "dataDir": "$work/cni-ipam", "routes": [{ "dst": "0.0.0.0/0" }] } }
CONF
  cp -r "$work/bundle" "$work/bundle-net"
  node -e '
    const f = process.argv[1]; const c = JSON.parse(require("fs").readFileSync(f));
    c.linux.namespaces = c.linux.namespaces.map((n) => (n.type === "network" ? { type: "network", path: "/run/netns/tspbench" } : n));
    require("fs").writeFileSync(f, JSON.stringify(c));' "$work/bundle-net/config.json"
  hyperfine --runs "$runs" --warmup 2 --export-json "$work/net.json" \
    -n 'tspod run (3 apps, --net=none)' "$tspod run --insecure-options=image --net=none $three" \
    -n 'tspod run (3 apps, --net=default)' "$tspod run --insecure-options=image --net=default $three" \
    -n 'crun x3 + CNI' "bench/pod-start/peer-cni.sh crun $work/bundle-net $work/cni.conf" \
    -n 'runc x3 + CNI' "bench/pod-start/peer-cni.sh runc $work/bundle-net $work/cni.conf"
  node -e '
    const r = require(process.argv[1]).results; const m = Object.fromEntries(r.map((x) => [x.command, x.median * 1000]));
    for (const [k, v] of Object.entries(m)) console.log(`${k.padEnd(34)} ${v.toFixed(1)} ms median`);
    const t = m["tspod run (3 apps, --net=default)"];
    console.log(`tspod networked - tspod --net=none: ${(t - m["tspod run (3 apps, --net=none)"]).toFixed(1)} ms`);
    for (const peer of ["crun x3 + CNI", "runc x3 + CNI"]) console.log(`tspod 3-app networked / ${peer}: ${(t / m[peer]).toFixed(2)}`);
    console.log(`target: tspod 3-app networked <= 120 ms, faster than crun + CNI plus a Node start`);
  ' "$work/net.json"
  # hyperfine runs one command after the other, so load changes between them show up as a
  # difference; the cost of the network itself is measured interleaved: none, default, none ...
  for i in $(seq 1 "$runs"); do
    for net in none default; do
      start=$(date +%s%N)
      $tspod run --insecure-options=image --net=$net $three >/dev/null 2>&1
      echo "$net $(( ($(date +%s%N) - start) / 1000 ))"
    done
  done >"$work/interleaved.txt"
  node -e '
    const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(" "));
    const med = (n) => { const xs = rows.filter((r) => r[0] === n).map((r) => Number(r[1]) / 1000).sort((a, b) => a - b); return xs[Math.floor(xs.length / 2)]; };
    console.log(`interleaved medians: --net=none ${med("none").toFixed(1)} ms, --net=default ${med("default").toFixed(1)} ms: the default network costs ${(med("default") - med("none")).toFixed(1)} ms`);
  ' "$work/interleaved.txt"
  # The network part alone, in one process: tspod's direct setup against the CNI cycle.
  node bench/pod-start/net-setup.mjs "$runs"
  ip link del tspbench0 2>/dev/null || true
  ip link del tspbench1 2>/dev/null || true
else
  echo "networked pods: skipped (apt-get install containernetworking-plugins for the CNI peers)"
fi

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
