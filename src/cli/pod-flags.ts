// Arguments and flags shared by the commands that take pods: a UUID (or a unique prefix), one or
// several, or `--uuid-file` (written by `--uuid-file-save`), as rkt's commands took them.
import { Args, Flags } from '@oclif/core';

export const podUuidArg = Args.string({ description: 'pod uuid (or a unique prefix)', required: false });

export const podUuidsArg = Args.string({ description: 'pod uuid (or a unique prefix); several may be given', required: false });

export const uuidFileFlag = Flags.string({ description: 'read the pod uuid from this file (written by --uuid-file-save)' });
