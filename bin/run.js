#!/usr/bin/env node
// tspod entry point: oclif with the generated manifest (no command is required at start-up).
import { execute } from '@oclif/core';

await execute({ dir: import.meta.url });
