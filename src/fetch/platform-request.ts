// `--os/--arch/--variant` of fetch, run and prepare applied to one image reference: an OCI
// reference takes the platform as it is (the manifest chosen from an index, src/oci/platform.ts);
// an appc name, URL or ACI file takes it as the labels `os` and `arch` in appc spelling, exactly as
// `--label os=... --label arch=...` would (discovery fills its templates with them, the store
// lookup and the fetched manifest must match them). An image id names one stored image: the flags
// do not apply to it. Pure, no I/O.
import type { Label } from '../appc/types.js';
import { UsageError } from '../errors.js';
import { platformLabels, type PlatformWanted } from '../oci/platform.js';
import type { FetchRequest } from './context.js';
import { classifyImageRef } from './reference.js';

export function withPlatform(ref: string, request: FetchRequest, platform: PlatformWanted | undefined): FetchRequest {
  if (platform === undefined) return request;
  const target = classifyImageRef(ref);
  if (target.kind === 'oci') return { ...request, platform };
  if (target.kind !== 'name' && target.kind !== 'file' && target.kind !== 'url') return request;
  const labels: Label[] = [...(request.labels ?? [])];
  for (const label of platformLabels(platform)) {
    const given = labels.find((l) => l.name === label.name);
    if (given === undefined) labels.push(label);
    else if (given.value !== label.value) {
      throw new UsageError(`image ${ref}: --${label.name === 'os' ? 'os' : 'arch'} means ${label.name}=${label.value}, but --label gives ${label.name}=${given.value}`, {
        suggestions: [`give one of them: --label ${label.name}=${label.value}`],
      });
    }
  }
  return { ...request, labels, platform };
}
