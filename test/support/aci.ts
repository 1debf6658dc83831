// Builds small ACI tars in memory for tests of logic (the end-to-end tests use actool's ACIs).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import tar from 'tar-stream';

import type { ImageManifest } from '../../src/appc/types.js';

export type TestEntry = string | { type: 'directory' } | { type: 'symlink'; target: string };

export async function makeAciTar(manifest: ImageManifest, files: Record<string, TestEntry> = {}): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  const mtime = new Date('2026-01-01T00:00:00Z');
  pack.entry({ name: 'rootfs', type: 'directory', mode: 0o755, mtime });
  for (const [name, entry] of Object.entries(files)) {
    const full = `rootfs/${name}`;
    if (typeof entry === 'string') pack.entry({ name: full, mode: 0o644, mtime }, entry);
    else if (entry.type === 'directory') pack.entry({ name: full, type: 'directory', mode: 0o755, mtime });
    else pack.entry({ name: full, type: 'symlink', linkname: entry.target, mtime });
  }
  pack.entry({ name: 'manifest', mode: 0o644, mtime }, JSON.stringify(manifest));
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function imageIdOf(tarBytes: Buffer): string {
  return `sha512-${crypto.createHash('sha512').update(tarBytes).digest('hex')}`;
}

export function manifestFor(name: string, extra: Partial<ImageManifest> = {}): ImageManifest {
  return {
    acKind: 'ImageManifest',
    acVersion: '0.8.11',
    name,
    labels: [
      { name: 'os', value: 'linux' },
      { name: 'arch', value: 'amd64' },
    ],
    ...extra,
  };
}

export function writeTmp(dir: string, bytes: Buffer): string {
  const file = path.join(dir, `test-${crypto.randomBytes(6).toString('hex')}.tar`);
  fs.writeFileSync(file, bytes);
  return file;
}
