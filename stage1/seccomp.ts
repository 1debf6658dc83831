// Seccomp filters as data: an app's `os/linux/seccomp-retain-set` / `-remove-set` isolator (or
// rkt's default whitelist when it has none) becomes a classic-BPF program (`struct sock_filter`
// array, linux/filter.h) that the apply step hands to seccomp(SECCOMP_SET_MODE_FILTER) right
// before execve. Pure: syscall numbers come from the generated x86_64 table, errno numbers from
// Node's os.constants.errno. `runFilter` is a small interpreter of exactly the instructions
// emitted here, so tests check behaviour, not bytes.
import os from 'node:os';

import type { Isolator } from '../src/appc/types.js';
import { PlanError } from './plan-error.js';
import { APPC_ALL, APPC_EMPTY, DEFAULT_WHITELIST, NOT_ON_X86_64, RETAIN_IMPLICIT, SECCOMP_GROUPS } from './seccomp-groups.js';
import { AUDIT_ARCH_X86_64, SYSCALLS_X86_64, X32_SYSCALL_BIT } from './seccomp-syscalls-x86_64.js';

export { AUDIT_ARCH_X86_64, SYSCALLS_X86_64, X32_SYSCALL_BIT };

export const SECCOMP_RETAIN_SET = 'os/linux/seccomp-retain-set';
export const SECCOMP_REMOVE_SET = 'os/linux/seccomp-remove-set';

// linux/bpf_common.h
export const BPF_LD = 0x00;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_W = 0x00;
export const BPF_ABS = 0x20;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGE = 0x30;
export const BPF_K = 0x00;
/** linux/bpf_common.h: the kernel refuses longer programs (EINVAL). */
export const BPF_MAXINSNS = 4096;

// linux/seccomp.h
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_ACTION_FULL = 0xffff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;

/** Offsets in `struct seccomp_data` (linux/seccomp.h): int nr; __u32 arch; __u64 ip; __u64 args[6]. */
export const SECCOMP_DATA_NR = 0;
export const SECCOMP_DATA_ARCH = 4;

/** Size of one `struct sock_filter`: u16 code, u8 jt, u8 jf, u32 k. */
export const SOCK_FILTER_SIZE = 8;

export type SeccompMode = 'retain' | 'remove';
export type SeccompArch = 'x86_64';

export interface SeccompFilterSpec {
  mode: SeccompMode;
  /** Syscall names and `@group` wildcards. */
  syscalls: readonly string[];
  /** `EPERM`-style name; empty or absent = kill the process (spec/ace.md: "SIGSYS"). */
  errno?: string;
  arch: SeccompArch;
  /** For error messages: `app web`. */
  context?: string;
  /** Longest forward jump used between a JEQ and its shared return (tests shrink it). */
  maxJump?: number;
}

export interface SeccompFilter {
  mode: SeccompMode;
  /** `struct sock_filter[]`, little-endian. */
  program: Buffer;
  instructions: number;
  /** Action for calls not listed (retain: deny; remove: SECCOMP_RET_ALLOW). */
  defaultAction: number;
  /** Action for listed calls (retain: SECCOMP_RET_ALLOW; remove: deny). */
  matchAction: number;
  /** Action for a foreign architecture or an x32 call. */
  badArchAction: number;
  /** Resolved syscall names, sorted by number. */
  syscalls: string[];
  /** Group members that are not system calls on this architecture (NOT_ON_X86_64). */
  skipped: string[];
}

export type FilterVerdict =
  | { action: 'allow' }
  | { action: 'errno'; errno: number }
  | { action: 'kill_process' }
  | { action: 'kill_thread' }
  | { action: 'trap' }
  | { action: 'log' }
  | { action: 'other'; value: number };

/** errno name -> number from the running system's table (os.constants.errno). */
export function errnoNumber(name: string, context = 'seccomp'): number {
  // spec/ace.md: errno "MUST be a valid errno name ... ^E[A-Z0-9]*$".
  const n = /^E[A-Z0-9]*$/.test(name) ? (os.constants.errno as Record<string, number | undefined>)[name] : undefined;
  if (n === undefined) throw new PlanError(`${context}: unknown errno ${JSON.stringify(name)} (expected a name such as EPERM or ENOSYS, see errno(3))`);
  return n;
}

/** Expands wildcards and checks names; unknown names are reported together. */
export function resolveSyscalls(names: readonly string[], context = 'seccomp'): { syscalls: string[]; skipped: string[]; all: boolean } {
  const out = new Set<string>();
  const skipped = new Set<string>();
  const unknown: string[] = [];
  let all = false;
  for (const name of names) {
    if (name === APPC_ALL) {
      all = true;
      continue;
    }
    if (name === APPC_EMPTY) continue;
    if (name.startsWith('@')) {
      const group = Object.hasOwn(SECCOMP_GROUPS, name) ? SECCOMP_GROUPS[name as keyof typeof SECCOMP_GROUPS] : undefined;
      if (group === undefined) {
        unknown.push(name);
        continue;
      }
      for (const member of group) {
        if (Object.hasOwn(SYSCALLS_X86_64, member)) out.add(member);
        else skipped.add(member);
      }
      continue;
    }
    if (Object.hasOwn(SYSCALLS_X86_64, name)) out.add(name);
    else unknown.push(name);
  }
  if (unknown.length > 0) {
    const other = unknown.filter((u) => NOT_ON_X86_64.includes(u));
    const hint = other.length > 0 ? `; ${other.join(', ')} exist only on other architectures` : '';
    throw new PlanError(
      `${context}: unknown system call${unknown.length === 1 ? '' : 's'} or group${unknown.length === 1 ? '' : 's'} on x86_64: ${unknown.join(', ')} (groups: ${[APPC_ALL, APPC_EMPTY, ...Object.keys(SECCOMP_GROUPS)].join(', ')}${hint})`,
    );
  }
  const sorted = [...out].sort((a, b) => (SYSCALLS_X86_64[a] ?? 0) - (SYSCALLS_X86_64[b] ?? 0));
  return { syscalls: sorted, skipped: [...skipped].sort(), all };
}

function insn(code: number, k: number, jt = 0, jf = 0): [number, number, number, number] {
  return [code, jt, jf, k >>> 0];
}

/**
 * Builds the program:
 *   ld [arch]; jeq AUDIT_ARCH_X86_64 ? +1 : 0; ret KILL_PROCESS      (foreign arch, e.g. int 0x80 i386)
 *   ld [nr];  jge X32_SYSCALL_BIT ? 0 : +1;  ret KILL_PROCESS        (x32 ABI shares the arch value)
 *   blocks of  { jeq nr_i ? ->ret_match : next } x <= maxJump, ja +1, ret MATCH
 *   ret DEFAULT
 * jt/jf are u8 (linux/filter.h), so a JEQ cannot reach a return more than 255 instructions away:
 * each block of JEQs ends with its own copy of the match return, and a `ja` (32-bit offset)
 * trampoline steps over it into the next block.
 */
export function buildSeccompFilter(spec: SeccompFilterSpec): SeccompFilter {
  const context = spec.context ?? 'seccomp';
  if (spec.arch !== 'x86_64') throw new PlanError(`${context}: seccomp filters are built for x86_64 only, not ${String(spec.arch)}`);
  const maxJump = Math.min(spec.maxJump ?? 255, 255);
  if (maxJump < 1) throw new PlanError(`${context}: maxJump must be at least 1`);
  const { syscalls: listed, skipped } = resolveSyscalls(spec.syscalls, context);
  const names = spec.mode === 'retain' ? [...new Set([...listed, ...RETAIN_IMPLICIT])] : listed;
  names.sort((a, b) => (SYSCALLS_X86_64[a] ?? 0) - (SYSCALLS_X86_64[b] ?? 0));
  const errno = spec.errno ?? '';
  const deny = errno === '' ? SECCOMP_RET_KILL_PROCESS : (SECCOMP_RET_ERRNO | (errnoNumber(errno, context) & SECCOMP_RET_DATA)) >>> 0;
  const matchAction = spec.mode === 'retain' ? SECCOMP_RET_ALLOW : deny;
  const defaultAction = spec.mode === 'retain' ? deny : SECCOMP_RET_ALLOW;
  const badArchAction = SECCOMP_RET_KILL_PROCESS;

  const prog: [number, number, number, number][] = [
    insn(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_ARCH),
    insn(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    insn(BPF_RET | BPF_K, badArchAction),
    insn(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR),
    insn(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
    insn(BPF_RET | BPF_K, badArchAction),
  ];
  for (let start = 0; start < names.length; start += maxJump) {
    const block = names.slice(start, start + maxJump);
    block.forEach((name, i) => {
      // From JEQ i, the block's `ret MATCH` is (block.length - i - 1) JEQs + 1 `ja` ahead.
      prog.push(insn(BPF_JMP | BPF_JEQ | BPF_K, SYSCALLS_X86_64[name] ?? -1, block.length - i, 0));
    });
    prog.push(insn(BPF_JMP | BPF_JA | BPF_K, 1));
    prog.push(insn(BPF_RET | BPF_K, matchAction));
  }
  prog.push(insn(BPF_RET | BPF_K, defaultAction));
  if (prog.length > BPF_MAXINSNS) {
    throw new PlanError(`${context}: seccomp filter of ${prog.length} instructions exceeds BPF_MAXINSNS (${BPF_MAXINSNS})`);
  }
  const program = Buffer.alloc(prog.length * SOCK_FILTER_SIZE);
  prog.forEach(([code, jt, jf, k], i) => {
    program.writeUInt16LE(code, i * 8);
    program.writeUInt8(jt, i * 8 + 2);
    program.writeUInt8(jf, i * 8 + 3);
    program.writeUInt32LE(k, i * 8 + 4);
  });
  return { mode: spec.mode, program, instructions: prog.length, defaultAction, matchAction, badArchAction, syscalls: names, skipped };
}

/** What an app's isolators ask for; `undefined` filter = no filtering (`retain @appc.io/all`). */
export interface SeccompChoice {
  source: 'isolator' | 'default';
  mode: SeccompMode;
  errno: string;
  filter: SeccompFilter | undefined;
}

function isolatorValue(iso: Isolator, context: string): { set: string[]; errno: string } {
  const v = iso.value as { set?: unknown; errno?: unknown } | null;
  const set = v !== null && typeof v === 'object' ? v.set : undefined;
  if (!Array.isArray(set) || set.length === 0 || !set.every((s): s is string => typeof s === 'string' && s !== '')) {
    throw new PlanError(`${context}: isolator "${iso.name}" needs {"set": [non-empty syscall names or @groups]}`);
  }
  const errno = v?.errno ?? '';
  if (typeof errno !== 'string') throw new PlanError(`${context}: isolator "${iso.name}": errno must be a string such as "EPERM"`);
  return { set, errno };
}

/**
 * The filter for an app (rkt stage1/init/common/seccomp.go):
 * - no seccomp isolator: retain `@rkt/default-whitelist` with EPERM;
 * - retain containing `@appc.io/all`: no filter;
 * - remove with only `@appc.io/empty`: the default whitelist (rkt's reading of "remove nothing");
 * - otherwise the isolator as given.
 */
export function seccompForApp(isolators: readonly Isolator[], app = 'app'): SeccompChoice {
  const context = `app ${app}`;
  const retain = isolators.filter((i) => i.name === SECCOMP_RETAIN_SET);
  const remove = isolators.filter((i) => i.name === SECCOMP_REMOVE_SET);
  if (retain.length + remove.length > 1) {
    // spec/ace.md: at most one seccomp isolator per app; retain and remove are mutually exclusive.
    throw new PlanError(`${context}: only one of "${SECCOMP_RETAIN_SET}" / "${SECCOMP_REMOVE_SET}" may be given, once`);
  }
  const iso = retain[0] ?? remove[0];
  const defaultChoice = (): SeccompChoice => ({
    source: 'default',
    mode: 'retain',
    errno: 'EPERM',
    filter: buildSeccompFilter({ mode: 'retain', syscalls: DEFAULT_WHITELIST, errno: 'EPERM', arch: 'x86_64', context }),
  });
  if (iso === undefined) return defaultChoice();
  const { set, errno } = isolatorValue(iso, context);
  const mode: SeccompMode = iso.name === SECCOMP_RETAIN_SET ? 'retain' : 'remove';
  if (mode === 'retain' && set.includes(APPC_ALL)) {
    resolveSyscalls(set, context);
    return { source: 'isolator', mode, errno, filter: undefined };
  }
  if (mode === 'remove' && set.every((s) => s === APPC_EMPTY)) return { ...defaultChoice(), source: 'isolator' };
  return { source: 'isolator', mode, errno, filter: buildSeccompFilter({ mode, syscalls: set, errno, arch: 'x86_64', context }) };
}

/** Decodes a SECCOMP_RET_* value. */
export function describeAction(value: number): FilterVerdict {
  const action = (value & SECCOMP_RET_ACTION_FULL) >>> 0;
  switch (action) {
    case SECCOMP_RET_ALLOW:
      return { action: 'allow' };
    case SECCOMP_RET_ERRNO:
      return { action: 'errno', errno: value & SECCOMP_RET_DATA };
    case SECCOMP_RET_KILL_PROCESS:
      return { action: 'kill_process' };
    case SECCOMP_RET_KILL_THREAD:
      return { action: 'kill_thread' };
    case SECCOMP_RET_TRAP:
      return { action: 'trap' };
    case SECCOMP_RET_LOG:
      return { action: 'log' };
    default:
      return { action: 'other', value };
  }
}

/**
 * Runs a program on one `seccomp_data` (nr, arch; args are not loaded by tspod's filters).
 * Supports the instructions buildSeccompFilter emits; anything else throws. Bounds-checks every
 * jump like the kernel's verifier (net/core/filter.c: "jumps must stay inside the program").
 */
export function runFilter(program: Buffer, data: { nr: number; arch: number }): FilterVerdict & { value: number } {
  if (program.length % SOCK_FILTER_SIZE !== 0 || program.length === 0) throw new Error('bpf: program length is not a multiple of 8');
  const count = program.length / SOCK_FILTER_SIZE;
  let acc = 0;
  let pc = 0;
  for (let steps = 0; steps <= count; steps++) {
    if (pc < 0 || pc >= count) throw new Error(`bpf: pc ${pc} outside the program (${count} instructions)`);
    const code = program.readUInt16LE(pc * 8);
    const jt = program.readUInt8(pc * 8 + 2);
    const jf = program.readUInt8(pc * 8 + 3);
    const k = program.readUInt32LE(pc * 8 + 4);
    switch (code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (k === SECCOMP_DATA_NR) acc = data.nr >>> 0;
        else if (k === SECCOMP_DATA_ARCH) acc = data.arch >>> 0;
        else throw new Error(`bpf: load from unsupported offset ${k}`);
        pc += 1;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += 1 + (acc === k ? jt : jf);
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        pc += 1 + (acc >= k ? jt : jf);
        break;
      case BPF_JMP | BPF_JA | BPF_K:
        pc += 1 + k;
        break;
      case BPF_RET | BPF_K:
        return { ...describeAction(k), value: k };
      default:
        throw new Error(`bpf: unsupported instruction code 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('bpf: program did not return');
}

/** Syscall number for a name on x86_64 (tests and diagnostics). */
export function syscallNumber(name: string): number {
  const n = Object.hasOwn(SYSCALLS_X86_64, name) ? SYSCALLS_X86_64[name] : undefined;
  if (n === undefined) throw new PlanError(`seccomp: unknown system call ${JSON.stringify(name)} on x86_64`);
  return n;
}
