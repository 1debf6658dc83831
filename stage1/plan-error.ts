// The error stage1's pure planning throws: a pod, an app or an isolator that cannot be run as
// given (unknown capability or syscall, user not found, overlapping mounts, missing working
// directory). A TspodError, so `tspod run` prints it in the usual form and exits 254.
import { TspodError, type TspodErrorOptions } from '../src/errors.js';

export class PlanError extends TspodError {
  constructor(message: string, options: TspodErrorOptions = {}) {
    super(message, options);
  }
}
