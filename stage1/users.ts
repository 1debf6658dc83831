// appc `user` / `group` resolution, pure (spec/aci.md "app": user, group): the image's own
// /etc/passwd and /etc/group first, then a numeric value, then a value beginning with `/` as the
// owner uid/gid of that file inside the rootfs. The files' text and a stat function come in as
// arguments; nothing here reads the disk.
//
// Decision (supplementary groups): the app gets appc `supplementaryGIDs` plus, when the user was
// found by name in /etc/passwd, every group of /etc/group that lists that name as a member (what
// initgroups(3) does for login, and what Docker does for `--user name`). A numeric or path user
// gets only `supplementaryGIDs`. The primary gid is never repeated.
// Decision (HOME/USER/LOGNAME/SHELL): from the passwd entry (by name, or by uid for a numeric
// user); uid 0 without an entry gets rkt's defaults (/root, root, /bin/sh); another uid without an
// entry gets HOME=/ and SHELL=/bin/sh, and no USER/LOGNAME.
import { PlanError } from './plan-error.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface ParseResult<T> {
  entries: T[];
  /** 1-based line numbers of lines that were neither comments, blank, nor well-formed. */
  malformed: number[];
}

const ID = /^[0-9]+$/;
/** Linux ids are u32; (uid_t)-1 is reserved ("no change" in setresuid(2)). */
const MAX_ID = 0xfffffffe;

function parseId(s: string): number | undefined {
  if (!ID.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

/** passwd(5): name:password:UID:GID:GECOS:directory:shell. Comments (#) and blank lines skipped. */
export function parsePasswd(text: string): ParseResult<PasswdEntry> {
  const entries: PasswdEntry[] = [];
  const malformed: number[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const f = line.split(':');
    const uid = parseId(f[2] ?? '');
    const gid = parseId(f[3] ?? '');
    // NSS compat lines (+name, -name) name other databases: not resolvable from the image.
    if (f.length !== 7 || f[0] === '' || /^[+-]/.test(f[0] ?? '') || uid === undefined || gid === undefined) {
      malformed.push(i + 1);
      return;
    }
    entries.push({ name: f[0] ?? '', uid, gid, gecos: f[4] ?? '', home: f[5] ?? '', shell: f[6] ?? '' });
  });
  return { entries, malformed };
}

/** group(5): group_name:password:GID:user_list. */
export function parseGroup(text: string): ParseResult<GroupEntry> {
  const entries: GroupEntry[] = [];
  const malformed: number[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const f = line.split(':');
    const gid = parseId(f[2] ?? '');
    if (f.length !== 4 || f[0] === '' || /^[+-]/.test(f[0] ?? '') || gid === undefined) {
      malformed.push(i + 1);
      return;
    }
    const members = (f[3] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '');
    entries.push({ name: f[0] ?? '', gid, members });
  });
  return { entries, malformed };
}

export interface UserInput {
  /** App name, for messages. */
  app: string;
  user: string;
  group: string;
  supplementaryGIDs?: readonly number[];
  /** Contents of the rootfs's /etc/passwd and /etc/group; undefined when the image has none. */
  passwd?: string | undefined;
  groupFile?: string | undefined;
  /** Owner of a path inside the rootfs (for `/path` values); undefined when it does not exist. */
  statOwner: (innerPath: string) => { uid: number; gid: number } | undefined;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  supplementaryGids: number[];
  /** The passwd entry used for HOME/USER/LOGNAME/SHELL, if any. */
  passwdEntry: PasswdEntry | undefined;
  /** How `user` was resolved. */
  userSource: 'passwd' | 'numeric' | 'path';
  groupSource: 'group' | 'numeric' | 'path';
}

export function resolveUser(input: UserInput): ResolvedUser {
  const where = `app ${input.app}`;
  const passwd = input.passwd === undefined ? undefined : parsePasswd(input.passwd).entries;
  const groups = input.groupFile === undefined ? undefined : parseGroup(input.groupFile).entries;

  let uid: number;
  let userSource: ResolvedUser['userSource'];
  let passwdEntry = passwd?.find((e) => e.name === input.user);
  if (input.user === '') throw new PlanError(`${where}: user must not be empty`);
  if (passwdEntry !== undefined) {
    uid = passwdEntry.uid;
    userSource = 'passwd';
  } else if (ID.test(input.user)) {
    const n = parseId(input.user);
    if (n === undefined) throw new PlanError(`${where}: user ${input.user} is out of range (uid 0..${MAX_ID})`);
    uid = n;
    userSource = 'numeric';
    passwdEntry = passwd?.find((e) => e.uid === n);
  } else if (input.user.startsWith('/')) {
    const owner = input.statOwner(input.user);
    if (owner === undefined) throw new PlanError(`${where}: user "${input.user}": no such file in the image (a user starting with / names the file whose owner the app runs as)`);
    uid = owner.uid;
    userSource = 'path';
    passwdEntry = passwd?.find((e) => e.uid === uid);
  } else {
    throw new PlanError(`${where}: user "${input.user}" not found in /etc/passwd of the image${passwd === undefined ? ' (the image has none)' : ''}, and not numeric`);
  }

  let gid: number;
  let groupSource: ResolvedUser['groupSource'];
  const groupEntry = groups?.find((g) => g.name === input.group);
  if (input.group === '') throw new PlanError(`${where}: group must not be empty`);
  if (groupEntry !== undefined) {
    gid = groupEntry.gid;
    groupSource = 'group';
  } else if (ID.test(input.group)) {
    const n = parseId(input.group);
    if (n === undefined) throw new PlanError(`${where}: group ${input.group} is out of range (gid 0..${MAX_ID})`);
    gid = n;
    groupSource = 'numeric';
  } else if (input.group.startsWith('/')) {
    const owner = input.statOwner(input.group);
    if (owner === undefined) throw new PlanError(`${where}: group "${input.group}": no such file in the image (a group starting with / names the file whose group the app runs as)`);
    gid = owner.gid;
    groupSource = 'path';
  } else {
    throw new PlanError(`${where}: group "${input.group}" not found in /etc/group of the image${groups === undefined ? ' (the image has none)' : ''}, and not numeric`);
  }

  const supplementary: number[] = [];
  for (const g of input.supplementaryGIDs ?? []) {
    if (!Number.isInteger(g) || g < 0 || g > MAX_ID) throw new PlanError(`${where}: supplementary gid ${String(g)} is not a valid gid`);
    supplementary.push(g);
  }
  if (userSource === 'passwd' && groups !== undefined) {
    for (const g of groups) if (g.members.includes(input.user)) supplementary.push(g.gid);
  }
  const supplementaryGids = [...new Set(supplementary)].filter((g) => g !== gid);
  return { uid, gid, supplementaryGids, passwdEntry, userSource, groupSource };
}

/** HOME, USER, LOGNAME, SHELL for the app (see the header). */
export function userEnvironment(user: Pick<ResolvedUser, 'uid' | 'passwdEntry'>): Record<string, string> {
  const e = user.passwdEntry;
  if (e !== undefined) {
    return { HOME: e.home === '' ? '/' : e.home, USER: e.name, LOGNAME: e.name, SHELL: e.shell === '' ? '/bin/sh' : e.shell };
  }
  // rkt stage1/init/common/environment.go defaults, right only for root.
  if (user.uid === 0) return { HOME: '/root', USER: 'root', LOGNAME: 'root', SHELL: '/bin/sh' };
  return { HOME: '/', SHELL: '/bin/sh' };
}
