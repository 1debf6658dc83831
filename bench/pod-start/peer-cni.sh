#!/usr/bin/env bash
# bench/pod-start/peer-cni.sh RUNTIME BUNDLE CONF: one networked 3-container "pod" with an OCI
# runtime, the way crun/runc users get a network: a named network namespace, the CNI plugin
# cycle (CNI_COMMAND=ADD of CONF with Debian's /usr/lib/cni plugins, as libcni runs them), three
# containers joining that namespace (BUNDLE's config.json names /run/netns/tspbench), then DEL and
# the namespace removed. RUNTIME is `crun` or `runc`; crun runs in a private mount namespace that
# hides the cgroup v2 controller list (../shared/docs/peers.md §1).
set -euo pipefail
runtime=$1 bundle=$2 conf=$3
ns=tspbench
ip netns add "$ns"
export CNI_CONTAINERID="bench$$" CNI_NETNS="/run/netns/$ns" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni
CNI_COMMAND=ADD /usr/lib/cni/bridge <"$conf" >/dev/null
for i in 1 2 3; do
  if [ "$runtime" = crun ]; then
    unshare -m sh -c "mount --bind $bundle/../empty /sys/fs/cgroup/unified/cgroup.controllers && crun run -b $bundle c$$-$i >/dev/null"
  else
    runc run -b "$bundle" "r$$-$i" >/dev/null
  fi
done
CNI_COMMAND=DEL /usr/lib/cni/bridge <"$conf" >/dev/null
ip netns del "$ns"
