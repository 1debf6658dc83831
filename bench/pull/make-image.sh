#!/usr/bin/env bash
# Builds the bench/pull image: an OCI layout (umoci) with three gzip layers made from this
# machine's files, about 220 MB and 11k files unpacked, about 80 MB compressed:
#   1. "base":   shared libraries from /usr/lib/x86_64-linux-gnu (files <= 4 MiB, up to ~90 MB)
#                and the small files (<= 16 KiB) of /usr/share/doc;
#   2. "python": /usr/lib/python3 and /usr/lib/python3.X;
#   3. "perl":   /usr/share/perl and /usr/share/perl5.
# Each layer is one `umoci repack` after a staged copy of its trees is added to the bundle.
# Usage: make-image.sh LAYOUT_DIR [TAG]   (the layout's image is LAYOUT_DIR:TAG, default 1)
set -euo pipefail
layout=$1
tag=${2:-1}
work=$(mktemp -d "${TMPDIR:-/dev/shm}/tspod-pull-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage() { # stage NAME < list of absolute paths
  local dir="$work/$1"
  mkdir -p "$dir"
  # --parents keeps the /usr/... path under the staging dir; -P copies symlinks as symlinks.
  xargs -d '\n' cp -P --preserve=mode,timestamps --parents -t "$dir" 2>/dev/null || true
}
find /usr/lib/x86_64-linux-gnu -xdev \( -type f -o -type l \) -printf '%s\t%p\n' 2>/dev/null | sort -k2 |
  awk -F'\t' '$1 <= 4194304 && size + $1 <= 90 * 1048576 { size += $1; print $2 }' > "$work/base.list"
find /usr/share/doc -xdev \( -type l -o -type f -size -17k \) 2>/dev/null | sort >> "$work/base.list"
stage base < "$work/base.list"
find /usr/lib/python3 /usr/lib/python3.[0-9]* -xdev \( -type f -o -type l \) 2>/dev/null | sort | stage python
find /usr/share/perl /usr/share/perl5 -xdev \( -type f -o -type l \) 2>/dev/null | sort | stage perl

rm -rf "$layout"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
# unpack + copy + repack per layer (umoci 0.4.7's `insert` writes tars without their end: the last
# body's padding and the two zero blocks are missing, so GNU tar and tspod refuse those layers).
umoci unpack --image "$layout:$tag" "$work/bundle" >/dev/null
for layer in base python perl; do
  cp -a "$work/$layer/usr" "$work/bundle/rootfs/"
  umoci repack --refresh-bundle --history.created_by "bench/pull $layer" --image "$layout:$tag" "$work/bundle"
done
umoci config --image "$layout:$tag" --config.cmd /usr/bin/python3 --config.workingdir / --os linux --architecture amd64
umoci gc --layout "$layout"
files=$(find "$work/bundle/rootfs" -type f -o -type l | wc -l)
unpacked=$(du -sm "$work/bundle/rootfs" | cut -f1)
compressed=$(du -smc "$layout/blobs" | tail -1 | cut -f1)
echo "$layout:$tag: 3 layers, $compressed MB compressed, $unpacked MB and $files files unpacked" >&2
