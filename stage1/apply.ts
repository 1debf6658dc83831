// Applying a PodPlan's filesystem part in the pod's mount namespace: empty volumes, then every
// planned mount(2) in order with what it creates (device nodes, symlinks, files), then the
// hostname. Runs in stage1's init (the pod's PID 1), so /proc mounts show the pod's PID
// namespace. All kernel calls go through Syscalls.
import fs from 'node:fs';
import path from 'node:path';

import { makedev, MS_BIND, MS_REC, S_IFCHR, SyscallError, type Syscalls } from '../src/sys/types.js';
import type { PlannedMount, PodPlan } from './plan.js';

function createTarget(target: string, kind: 'dir' | 'file'): void {
  if (kind === 'dir') {
    fs.mkdirSync(target, { recursive: true, mode: 0o755 });
    return;
  }
  fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
  if (!fs.existsSync(target)) fs.writeFileSync(target, '', { mode: 0o644 });
}

function applyMount(sys: Syscalls, m: PlannedMount, terminal: string | undefined): void {
  if (m.createTarget !== undefined) createTarget(m.target, m.createTarget);
  else if (m.optional === true && !fs.existsSync(m.target)) return;
  // overlay(5): upperdir and workdir must exist (on the same filesystem) before the mount.
  if (m.fstype === 'overlay' && m.data !== null) {
    for (const option of m.data.split(',')) {
      const [key, value] = option.split('=', 2);
      if ((key === 'upperdir' || key === 'workdir') && value !== undefined) fs.mkdirSync(value, { recursive: true, mode: 0o755 });
    }
  }
  const source = m.sourceIsTerminal === true && terminal !== undefined ? terminal : m.source;
  try {
    sys.mount(source, m.target, m.fstype, m.flags, m.data);
  } catch (err) {
    if (m.optional === true) return;
    // overlay(5) is refused on some backing filesystems: fall back to a private copy.
    if (m.copyFallback !== undefined && err instanceof SyscallError && (err.code === 'EINVAL' || err.code === 'ENODEV')) {
      fs.cpSync(m.copyFallback.from, m.copyFallback.to, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
      sys.mount(m.copyFallback.to, m.target, null, MS_BIND | MS_REC, null);
    } else {
      throw err;
    }
  }
  for (const node of m.mknod ?? []) {
    try {
      sys.mknod(node.path, S_IFCHR | node.mode, makedev(node.major, node.minor));
      fs.chmodSync(node.path, node.mode); // mknod(2) applies the umask
    } catch (err) {
      if (!(err instanceof SyscallError) || err.code !== 'EPERM') throw err;
      // No CAP_MKNOD (nested or restricted host): bind the host's node instead.
      createTarget(node.path, 'file');
      sys.mount(node.hostPath, node.path, null, MS_BIND, null);
    }
  }
  for (const link of m.symlinks ?? []) {
    fs.rmSync(link.path, { force: true });
    fs.symlinkSync(link.target, link.path);
  }
  for (const file of m.files ?? []) {
    fs.mkdirSync(path.dirname(file.path), { recursive: true, mode: 0o755 });
    fs.rmSync(file.path, { force: true });
    fs.writeFileSync(file.path, file.content, { mode: file.mode });
  }
}

/** Everything of the plan that lives in the mount namespace, in the plan's order. */
export function applyPodFilesystem(sys: Syscalls, plan: PodPlan, options: { terminal?: string } = {}): void {
  for (const volume of plan.emptyVolumes) {
    fs.mkdirSync(volume.path, { recursive: true });
    fs.chmodSync(volume.path, volume.mode);
    fs.chownSync(volume.path, volume.uid, volume.gid);
  }
  for (const m of plan.mounts) applyMount(sys, m, options.terminal);
  for (const sysctl of plan.sysctls) fs.writeFileSync(sysctl.path, sysctl.value);
  sys.sethostname(plan.hostname);
}
