// The typed errors of pod networking (src/errors.ts's hierarchy): a bad network configuration, and
// a failure while setting a pod's network up or tearing it down.
import { TspodError } from '../errors.js';

/** A `net.d` configuration, `--net`/`--port` request or address that cannot be used. */
export class NetworkConfigError extends TspodError {}

/** Setting up or tearing down a pod network failed (netlink, the firewall tool, a CNI plugin). */
export class NetworkSetupError extends TspodError {}
