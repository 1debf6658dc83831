import { Flags } from '@oclif/core';

import { shortImageId } from '../../appc/identifiers.js';
import { labelValue } from '../../appc/labels.js';
import { TspodCommand } from '../../cli/base-command.js';
import { formatAgo, formatSize, renderTable } from '../../output/table.js';
import type { ImageRecord } from '../../store/catalog.js';

/**
 * A catalog record as `image list --json` shows it (schemas/image-list.json): its source reduced
 * to the signer and, for an image converted from an OCI image, the OCI manifest digest.
 */
export type ImageListEntry = Omit<ImageRecord, 'source'> & { signer: string | null; ociDigest: string | null };

export default class ImageList extends TspodCommand<typeof ImageList> {
  static override summary = 'List the images in the store';
  static override examples = ['<%= config.bin %> image list', '<%= config.bin %> image list --full --no-legend', '<%= config.bin %> image list --json'];
  static override enableJsonFlag = true;
  static override flags = {
    full: Flags.boolean({ description: 'full image ids and absolute times, and a DIGEST column (the OCI manifest digest of a docker:// or oci: image)', default: false }),
    'no-legend': Flags.boolean({ description: 'do not print the header line', default: false }),
  };

  public async run(): Promise<ImageListEntry[]> {
    const entries: ImageListEntry[] = this.context.store.listImages().map((r) => ({
      id: r.id,
      name: r.name,
      labels: r.labels,
      importTime: r.importTime,
      lastUsed: r.lastUsed,
      size: r.size,
      signer: r.source.signer,
      ociDigest: r.source.digest ?? null,
    }));
    const full = this.flags.full;
    const time = (iso: string): string => (full ? iso : formatAgo(iso));
    this.log(
      renderTable(
        [
          { header: 'ID', get: (e: ImageListEntry) => (full ? e.id : shortImageId(e.id)) },
          { header: 'NAME', get: (e) => `${e.name}${labelValue(e.labels, 'version') === undefined ? '' : `:${labelValue(e.labels, 'version')}`}` },
          { header: 'SIZE', get: (e) => (full ? String(e.size) : formatSize(e.size)) },
          { header: 'IMPORT TIME', get: (e) => time(e.importTime) },
          { header: 'LAST USED', get: (e) => time(e.lastUsed) },
          ...(full ? [{ header: 'DIGEST', get: (e: ImageListEntry) => e.ociDigest ?? '-' }] : []),
        ],
        entries,
        { noLegend: this.flags['no-legend'] },
      ),
    );
    return entries;
  }
}
