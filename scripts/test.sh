#!/usr/bin/env bash
# The test command: set up (Debian packages, npm ci, build), then run the whole vitest suite.
# Tests that need root or a server say why they skip; as root, all of them run.
# The last line printed is `N passed, N failed, N skipped`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
log=$(mktemp)
# A test stuck in a synchronous call cannot be timed out by vitest itself: bound the whole run.
timeout --kill-after=30 1500 npx vitest run "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
rm -f "$log"
[ -n "$summary" ] || { summary="0 passed, 1 failed"; status=1; }
echo "$summary"
exit "$status"
