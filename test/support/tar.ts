// A tar archive in memory, made with tar-stream from header objects (plus content for files),
// for tests of extraction and layer application. Each header gets `defaults` under it and, when
// it names no mtime, a fixed one, so archives are byte-for-byte reproducible.
import tarStream from 'tar-stream';

export type TarEntry = Partial<tarStream.Header> & { name: string; content?: string | Buffer };

const FIXED_MTIME = new Date(1_500_000_000_000);

export async function tarOf(entries: TarEntry[], defaults: Partial<tarStream.Header> = {}): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const { content, ...h } of entries) {
    const header = { ...defaults, ...h, mtime: h.mtime ?? defaults.mtime ?? FIXED_MTIME };
    await new Promise<void>((resolve, reject) => pack.entry(header, content ?? '', (e) => (e ? reject(e) : resolve())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}
