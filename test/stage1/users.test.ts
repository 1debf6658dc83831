import { describe, expect, it } from 'vitest';

import { parseGroup, parsePasswd, resolveUser, userEnvironment } from '../../stage1/users.js';

const PASSWD = `# system users
root:x:0:0:root:/root:/bin/bash

nginx:x:101:101:nginx user:/var/lib/nginx:/sbin/nologin
broken line without colons
bad:x:notanumber:1:::/bin/sh
+nisuser::::::
alice:x:1000:1000:Alice:/home/alice:/bin/zsh
`;
const GROUP = `root:x:0:
# comment
nginx:x:101:
www:x:33:alice,nginx
audio:x:29: alice
garbage
alice:x:1000:
`;

const noStat = () => undefined;

describe('parsePasswd / parseGroup', () => {
  it('skips comments and blank lines and reports malformed lines by number', () => {
    const p = parsePasswd(PASSWD);
    expect(p.entries.map((e) => e.name)).toEqual(['root', 'nginx', 'alice']);
    expect(p.malformed).toEqual([5, 6, 7]);
    expect(p.entries[1]).toEqual({ name: 'nginx', uid: 101, gid: 101, gecos: 'nginx user', home: '/var/lib/nginx', shell: '/sbin/nologin' });
    const g = parseGroup(GROUP);
    expect(g.entries.find((e) => e.name === 'www')?.members).toEqual(['alice', 'nginx']);
    expect(g.entries.find((e) => e.name === 'audio')?.members).toEqual(['alice']);
    expect(g.malformed).toEqual([6]);
  });

  it('accepts CRLF line endings', () => {
    expect(parsePasswd('a:x:1:2::/:/bin/sh\r\n').entries[0]?.shell).toBe('/bin/sh');
  });
});

describe('resolveUser', () => {
  it('resolves names from the image\'s /etc/passwd and /etc/group, adding the user\'s /etc/group memberships', () => {
    const u = resolveUser({ app: 'web', user: 'alice', group: 'alice', supplementaryGIDs: [5, 1000], passwd: PASSWD, groupFile: GROUP, statOwner: noStat });
    expect(u).toMatchObject({ uid: 1000, gid: 1000, userSource: 'passwd', groupSource: 'group' });
    expect(u.supplementaryGids).toEqual([5, 33, 29]);
    expect(userEnvironment(u)).toEqual({ HOME: '/home/alice', USER: 'alice', LOGNAME: 'alice', SHELL: '/bin/zsh' });
  });

  it('takes numeric values when no entry has that name, and finds HOME by uid', () => {
    const u = resolveUser({ app: 'web', user: '101', group: '4242', passwd: PASSWD, groupFile: GROUP, statOwner: noStat });
    expect(u).toMatchObject({ uid: 101, gid: 4242, userSource: 'numeric', groupSource: 'numeric', supplementaryGids: [] });
    expect(userEnvironment(u).HOME).toBe('/var/lib/nginx');
  });

  it('uses the owner of a file for values starting with /', () => {
    const u = resolveUser({ app: 'web', user: '/data/owned', group: '/data/owned', statOwner: (p) => (p === '/data/owned' ? { uid: 7, gid: 8 } : undefined) });
    expect(u).toMatchObject({ uid: 7, gid: 8, userSource: 'path', groupSource: 'path' });
    expect(() => resolveUser({ app: 'web', user: '/missing', group: '0', statOwner: noStat })).toThrow(/user "\/missing": no such file in the image/);
  });

  it('fails clearly for a name that is neither in /etc/passwd nor numeric', () => {
    expect(() => resolveUser({ app: 'web', user: 'nobody2', group: '0', passwd: PASSWD, statOwner: noStat })).toThrow(
      'app web: user "nobody2" not found in /etc/passwd of the image, and not numeric',
    );
    expect(() => resolveUser({ app: 'web', user: 'nginx', group: 'nginx', statOwner: noStat })).toThrow(/user "nginx" not found in \/etc\/passwd of the image \(the image has none\)/);
    expect(() => resolveUser({ app: 'web', user: '0', group: 'staff', groupFile: GROUP, statOwner: noStat })).toThrow(/group "staff" not found in \/etc\/group/);
  });

  it('rejects an out-of-range uid', () => {
    expect(() => resolveUser({ app: 'web', user: '4294967295', group: '0', statOwner: noStat })).toThrow(/out of range/);
  });

  it('gives root without a passwd entry rkt\'s defaults, and other uids HOME=/', () => {
    expect(userEnvironment({ uid: 0, passwdEntry: undefined })).toEqual({ HOME: '/root', USER: 'root', LOGNAME: 'root', SHELL: '/bin/sh' });
    expect(userEnvironment({ uid: 5, passwdEntry: undefined })).toEqual({ HOME: '/', SHELL: '/bin/sh' });
  });
});
