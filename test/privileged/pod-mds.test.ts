// The metadata service in real pods, as root: `tspod run --mds-register` with the busybox demo
// image; the app talks to $AC_METADATA_URL with busybox wget (headers with -S, forms with
// --post-data) and the test checks what it printed against the real pod (uuid, manifest, image
// id). Also: the pod's loopback is up with --net=none, the service is not reachable from outside
// the pod, pods verify each other's signatures, and pods without the flag get no URL.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { describe, expect, it } from 'vitest';

import { STAGE1_FILES } from '../../stage1/contract.js';
import { canRunPods, usePodSuite } from '../support/pod-env.js';

/** Shell helpers for the app: `$u` is the endpoint base, `get` prints a body, `hdr` a Content-Type. */
const PRELUDE = [
  'u="$AC_METADATA_URL/acMetadata/v1"',
  'get() { busybox wget -q -O- "$u/$1"; }',
  // wget -S prints the response headers on stderr, indented.
  'hdr() { busybox wget -S -O /dev/null "$u/$1" 2>&1 | busybox grep -i "^ *content-type:" | busybox sed "s/^ *[Cc]ontent-[Tt]ype: *//"; }',
  // Form encoding of a base64 signature: + / = are reserved in application/x-www-form-urlencoded.
  'enc() { echo -n "$1" | busybox sed "s/+/%2B/g; s,/,%2F,g; s/=/%3D/g"; }',
  // Exit status and first error line of a verify: wget exits 1 on a 4xx.
  'verify() { busybox wget -q -O- --post-data "content=$1&uuid=$2&signature=$(enc "$3")" "$u/pod/hmac/verify" 2>/tmp/verr; echo "rc=$? $(busybox head -1 /tmp/verr)"; }',
].join('\n');

function field(out: string, name: string): string | undefined {
  return new RegExp(`^${name}=(.*)$`, 'm').exec(out)?.[1];
}

function fetchStatus(url: string): Promise<number | string> {
  return new Promise((resolve) => {
    http
      .get(url, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe.skipIf(!canRunPods)('tspod run --mds-register: the metadata service in real pods (needs root and actool)', () => {
  const suite = usePodSuite();

  const uuidFile = (name: string) => path.join(suite.env.base, `${name}.uuid`);

  /** Starts a pod in the background; resolves with its output so far once `marker` was printed. */
  async function startPod(args: string[], marker: string) {
    const child = suite.env.spawn(['run', '--insecure-options=image', ...args]);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 400 && !out.includes(marker); i++) await sleep(25);
    if (!out.includes(marker)) throw new Error(`pod never printed ${marker}:\n${out}\n${err}`);
    return { child, exited, output: () => out, errors: () => err };
  }

  it('an app fetches its pod uuid, pod manifest and image id, with the spec content types', () => {
    const script = [
      PRELUDE,
      'echo "url=$AC_METADATA_URL"',
      'echo "uuid=$(get pod/uuid)"',
      'echo "manifest=$(get pod/manifest)"',
      'echo "image-id=$(get apps/$AC_APP_NAME/image/id)"',
      'echo "image-manifest=$(get apps/$AC_APP_NAME/image/manifest)"',
      'echo "app-annotations=$(get apps/$AC_APP_NAME/annotations)"',
      'echo "ct-manifest=$(hdr pod/manifest)"',
      'echo "ct-uuid=$(hdr pod/uuid)"',
      'echo "ct-annotations=$(hdr pod/annotations)"',
      'echo "ct-image-id=$(hdr apps/$AC_APP_NAME/image/id)"',
      'echo "ct-image-manifest=$(hdr apps/$AC_APP_NAME/image/manifest)"',
      'busybox wget -q -O- "$u/apps/no-such-app/image/id" 2>&1; echo "unknown-app-rc=$?"',
      'busybox wget -q -O- "${AC_METADATA_URL%/*}/00000000000000000000000000000000/acMetadata/v1/pod/uuid" 2>&1; echo "bad-token-rc=$?"',
    ].join('\n');
    const result = suite.env.run(['run', '--insecure-options=image', '--mds-register', '--net=none', '--uuid-file-save', uuidFile('facts'), suite.demo, '--exec', '/bin/sh', '--', '-c', script]);
    expect(result.status, result.stderr + result.stdout).toBe(0);
    const out = result.stdout;
    const uuid = fs.readFileSync(uuidFile('facts'), 'utf8').trim();

    // On the pod's own loopback, with a 128-bit token.
    expect(field(out, 'url')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{32}$/);
    expect(field(out, 'uuid')).toBe(uuid);
    const served = JSON.parse(field(out, 'manifest')!) as { apps: { name: string; image: { id: string } }[] };
    expect(served).toEqual(JSON.parse(suite.env.ok(['cat-manifest', uuid])));
    expect(field(out, 'image-id')).toBe(served.apps[0]!.image.id);
    expect(field(out, 'image-id')).toMatch(/^sha512-[0-9a-f]{128}$/);
    const imageManifest = JSON.parse(field(out, 'image-manifest')!) as { name: string; annotations: unknown };
    expect(imageManifest.name).toBe('tspod.dev/demo');
    expect(JSON.parse(field(out, 'app-annotations')!)).toEqual(imageManifest.annotations);

    expect(field(out, 'ct-manifest')).toBe('application/json');
    expect(field(out, 'ct-annotations')).toBe('application/json');
    expect(field(out, 'ct-image-manifest')).toBe('application/json');
    expect(field(out, 'ct-uuid')).toBe('text/plain; charset=us-ascii');
    expect(field(out, 'ct-image-id')).toBe('text/plain; charset=us-ascii');

    expect(out).toMatch(/404 Not Found/);
    expect(field(out, 'unknown-app-rc')).toBe('1');
    expect(out).toMatch(/401 Unauthorized/);
    expect(field(out, 'bad-token-rc')).toBe('1');

    // The pod's key: 32 bytes, root only.
    const keyFile = path.join(suite.env.dir, 'pods', 'run', uuid, STAGE1_FILES.mdsHmacKey);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(fs.statSync(keyFile).size).toBe(32);
  });

  it('sign then verify round-trips from inside the pod; a forged signature and a wrong uuid are refused (403)', () => {
    const script = [
      PRELUDE,
      'uuid=$(get pod/uuid)',
      'sig=$(busybox wget -q -O- --post-data "content=hello+pod" "$u/pod/hmac/sign")',
      'echo "sig=$sig"',
      'echo "good: $(verify hello+pod "$uuid" "$sig")"',
      // One character of the signature changed: still valid base64, another HMAC.
      'forged=$(echo -n "$sig" | busybox sed "s/^A/B/;t;s/^./A/")',
      'echo "forged: $(verify hello+pod "$uuid" "$forged")"',
      'echo "other-content: $(verify hello+pot "$uuid" "$sig")"',
      'echo "wrong-uuid: $(verify hello+pod 0b9a3c1e-0000-4000-8000-000000000000 "$sig")"',
    ].join('\n');
    const result = suite.env.run(['run', '--insecure-options=image', '--mds-register', '--net=none', suite.demo, '--exec', '/bin/sh', '--', '-c', script]);
    expect(result.status, result.stderr + result.stdout).toBe(0);
    const out = result.stdout;
    expect(field(out, 'sig')).toMatch(/^[A-Za-z0-9+/]{86}==$/);
    expect(out).toMatch(/^good: rc=0 *$/m);
    expect(out).toMatch(/^forged: rc=1 .*403 Forbidden/m);
    expect(out).toMatch(/^other-content: rc=1 .*403 Forbidden/m);
    expect(out).toMatch(/^wrong-uuid: rc=1 .*403 Forbidden/m);
  });

  it('a pod verifies the signature of another registered pod while that pod is in pods/run', async () => {
    const signer = await startPod(
      ['--mds-register', '--net=none', suite.demo, '--exec', '/bin/sh', '--', '-c', `${PRELUDE}\necho "uuid=$(get pod/uuid)"; echo "sig=$(busybox wget -q -O- --post-data content=from-a "$u/pod/hmac/sign")"; echo signed; sleep 30`],
      'signed',
    );
    try {
      const uuidA = field(signer.output(), 'uuid')!;
      const sigA = field(signer.output(), 'sig')!;
      expect(uuidA).toMatch(/^[0-9a-f-]{36}$/);
      const script = `${PRELUDE}\necho "cross: $(verify from-a "$UUID_A" "$SIG_A")"; echo "cross-forged: $(verify from-b "$UUID_A" "$SIG_A")"`;
      const result = suite.env.run(['run', '--insecure-options=image', '--mds-register', '--net=none', '--set-env', `UUID_A=${uuidA}`, '--set-env', `SIG_A=${sigA}`, suite.demo, '--exec', '/bin/sh', '--', '-c', script]);
      expect(result.status, result.stderr + result.stdout).toBe(0);
      expect(result.stdout).toMatch(/^cross: rc=0 *$/m);
      expect(result.stdout).toMatch(/^cross-forged: rc=1 .*403 Forbidden/m);
    } finally {
      signer.child.kill('SIGTERM');
      await signer.exited;
    }
  });

  it('the service is on the pod loopback only: the host cannot connect, and the init runs in the pod netns', async () => {
    const pod = await startPod(
      ['--mds-register', '--net=none', '--uuid-file-save', uuidFile('isolated'), suite.demo, '--exec', '/bin/sh', '--', '-c', `${PRELUDE}\necho "url=$AC_METADATA_URL"; echo "inside=$(get pod/uuid)"; echo listening; sleep 30`],
      'listening',
    );
    try {
      const url = field(pod.output(), 'url')!;
      const uuid = fs.readFileSync(uuidFile('isolated'), 'utf8').trim();
      expect(field(pod.output(), 'inside')).toBe(uuid);
      // Same address and port, from the host's network namespace: nothing listens there.
      expect(await fetchStatus(`${url}/acMetadata/v1/pod/uuid`)).toBe('ECONNREFUSED');
      const pid = fs.readFileSync(path.join(suite.env.dir, 'pods', 'run', uuid, STAGE1_FILES.pid), 'utf8').trim();
      expect(fs.readlinkSync(`/proc/${pid}/ns/net`)).not.toBe(fs.readlinkSync('/proc/self/ns/net'));
    } finally {
      pod.child.kill('SIGTERM');
      expect(await pod.exited).toBe(0);
    }
  });

  it('--net=host: the service listens on the host loopback, where the token is the only protection', async () => {
    const pod = await startPod(['--mds-register', '--net=host', suite.demo, '--exec', '/bin/sh', '--', '-c', 'echo "url=$AC_METADATA_URL"; echo listening; sleep 30'], 'listening');
    try {
      const url = field(pod.output(), 'url')!;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{32}$/);
      expect(await fetchStatus(`${url}/acMetadata/v1/pod/uuid`)).toBe(200);
      expect(await fetchStatus(`${url.replace(/[0-9a-f]{32}$/, 'f'.repeat(32))}/acMetadata/v1/pod/uuid`)).toBe(401);
    } finally {
      pod.child.kill('SIGTERM');
      await pod.exited;
    }
  });

  it('a pod without --mds-register has no AC_METADATA_URL and no key; its --net=none loopback is up', () => {
    const script = [
      'echo "mds=${AC_METADATA_URL-unset}"',
      'echo "link=$(busybox ip link show lo | busybox head -1)"',
      'echo "addr=$(busybox ip -o -4 addr show lo)"',
      // A TCP round trip over 127.0.0.1 inside the pod.
      'busybox nc -l -p 4321 -e echo pong & sleep 0.2',
      'echo "roundtrip=$(echo ping | busybox nc 127.0.0.1 4321)"',
    ].join('\n');
    const result = suite.env.run(['run', '--insecure-options=image', '--net=none', '--uuid-file-save', uuidFile('plain'), suite.demo, '--exec', '/bin/sh', '--', '-c', script]);
    expect(result.status, result.stderr + result.stdout).toBe(0);
    expect(field(result.stdout, 'mds')).toBe('unset');
    expect(field(result.stdout, 'link')).toMatch(/^1: lo: <LOOPBACK,UP,LOWER_UP>/);
    expect(field(result.stdout, 'addr')).toMatch(/inet 127\.0\.0\.1\/8/);
    expect(field(result.stdout, 'roundtrip')).toBe('pong');
    const uuid = fs.readFileSync(uuidFile('plain'), 'utf8').trim();
    expect(fs.existsSync(path.join(suite.env.dir, 'pods', 'run', uuid, STAGE1_FILES.mdsHmacKey))).toBe(false);
  });
});
