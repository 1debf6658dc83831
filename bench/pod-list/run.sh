#!/usr/bin/env bash
# bench/pod-list: `tspod list --json` with 1,000 pods on disk (mostly exited with 1-3 apps, 50
# running with their lock held by background `flock -o` processes, some prepared and
# exited-garbage), timed with hyperfine; prints the median (target <= 250 ms, process start
# included), next to the same command on an empty data dir (the CLI's start-up floor). The second
# and later listings read finished pods from pods/.list-cache.json (src/pod/list.ts): the warm-up
# runs build it. Needs: hyperfine, flock, a built tspod (npm run build).
# Usage: bench/pod-list/run.sh [PODS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
pods=${1:-1000}
runs=${2:-20}
work=${BENCH_DIR:-/dev/shm/tspod-bench-pod-list}
rm -rf "$work"
mkdir -p "$work"
holders=()
cleanup() {
  for pid in "${holders[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# The pod fabricator is test/support/pods.ts: compile it (and what it imports) on the side;
# the symlink lets the compiled files find koffi.
ln -s "$PWD/node_modules" "$work/node_modules"
node node_modules/typescript/bin/tsc --outDir "$work/js" --rootDir . --module nodenext --moduleResolution nodenext \
  --target es2022 --strict --skipLibCheck --types node bench/pod-list/make-pods.ts
node "$work/js/bench/pod-list/make-pods.js" "$work/data" "$pods" 50 >"$work/holders"
mapfile -t holders <"$work/holders"
tspod="node $PWD/bin/run.js --dir $work/data --local-config $work/etc --system-config $work/sys"
count=$($tspod list --json | node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>console.log(JSON.parse(s).length))')
echo "pods listed: $count (running: ${#holders[@]})"
empty="node $PWD/bin/run.js --dir $work/empty --local-config $work/etc --system-config $work/sys"
hyperfine -N --runs "$runs" --warmup 3 --export-json "$work/result.json" -n 'tspod list --json' "$tspod list --json" \
  -n 'tspod list --json, no pods (CLI start-up)' "$empty list --json" -n 'node (process start only)' 'node -e 0' >/dev/null
node -e '
  const r = require(process.argv[1]).results;
  const [list, empty, node] = r.map((x) => x.median * 1000);
  console.log(`tspod list --json, ${process.argv[2]} pods: ${list.toFixed(1)} ms median (target <= 250 ms)`);
  console.log(`  same with no pods (CLI start-up): ${empty.toFixed(1)} ms; bare node start: ${node.toFixed(1)} ms`);
' "$work/result.json" "$pods"
