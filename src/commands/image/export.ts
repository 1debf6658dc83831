import { Args, Flags } from '@oclif/core';

import { TspodCommand } from '../../cli/base-command.js';
import { imageArg, labelFlag, resolveImageArg } from '../../cli/image-flags.js';
import { UsageError } from '../../errors.js';
import { EXPORT_FORMATS, exportImage, exportOciImage, type ExportFormat } from '../../image/unpack.js';

export default class ImageExport extends TspodCommand<typeof ImageExport> {
  static override summary = 'Write a stored image to an ACI file (byte-identical to the stored tar) or as an OCI image';
  static override description =
    '--format aci (the default) copies the stored tar. --format oci writes the image as a pod sees it (its dependencies ' +
    'applied) into an OCI image layout directory: one gzip layer of the rendered root filesystem (sorted; modes, mtimes ' +
    'and, as root, owners kept) and a config converted back from the image manifest (exec, environment, user and group, ' +
    'working directory, ports, mount points as volumes, labels and annotations as config labels, os/arch). The image is ' +
    'tagged with --tag, else its version label, else latest; skopeo, umoci and `tspod fetch oci:DIR:TAG` read it. ' +
    '--format oci-archive writes the same layout as a tar file. An existing output is replaced only with --overwrite ' +
    '(an empty directory may be used for --format oci).';
  static override examples = [
    '<%= config.bin %> image export example.com/app:1.0 app.aci',
    '<%= config.bin %> image export --overwrite sha512-0123 app.aci',
    '<%= config.bin %> image export --format oci example.com/app:1.0 ./app-layout   # then: skopeo inspect oci:./app-layout:1.0',
    '<%= config.bin %> image export --format oci-archive --tag stable example.com/app app.tar',
  ];
  static override enableJsonFlag = true;
  static override args = {
    image: imageArg,
    output: Args.string({ description: 'the .aci file, the layout directory (--format oci) or the tar file (--format oci-archive) to write', required: true }),
  };
  static override flags = {
    format: Flags.string({ description: 'aci: the stored tar; oci: an OCI image layout directory; oci-archive: a tar of one', options: [...EXPORT_FORMATS], default: 'aci' }),
    tag: Flags.string({ description: 'tag of the image in the OCI layout (default: the version label, else latest); not for --format aci' }),
    overwrite: Flags.boolean({ description: 'replace the output if it exists', default: false }),
    label: labelFlag,
  };

  public async run(): Promise<{ id: string; path: string; format: ExportFormat; tag?: string; digest?: string }> {
    const { store } = this.context;
    const record = resolveImageArg(store, this.args.image, this.flags.label);
    const format = this.flags.format as ExportFormat;
    if (format === 'aci') {
      if (this.flags.tag !== undefined) throw new UsageError('--tag is for --format oci and oci-archive: an ACI is exported as it is stored');
      const path = await exportImage(store, record.id, this.args.output, { overwrite: this.flags.overwrite });
      return { id: record.id, path, format };
    }
    const result = await exportOciImage(store, record.id, this.args.output, {
      format,
      overwrite: this.flags.overwrite,
      ...(this.flags.tag === undefined ? {} : { tag: this.flags.tag }),
    });
    if (!this.jsonEnabled()) this.log(`${format}:${result.path}:${result.tag}`);
    return { id: record.id, path: result.path, format, tag: result.tag, digest: result.digest };
  }
}
