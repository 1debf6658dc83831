// Running the network tools (iptables-restore, nft, CNI plugins): argv, environment and stdin in;
// exit code, stdout and stderr out. One function, injected where tests need a fake. A child is
// forked from the calling (main) thread, so it starts in that thread's namespaces
// (linux-from-node.md): stage0 calls these only while its main thread is in the host's network
// and PID namespaces (src/net/pod-network.ts).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type CommandRunner = (program: string, args: readonly string[], input: string, env?: NodeJS.ProcessEnv) => Promise<CommandResult>;

export const runCommand: CommandRunner = (program, args, input, env) =>
  new Promise((resolve, reject) => {
    const child = spawn(program.includes('/') ? program : (findProgram(program) ?? program), [...args], { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    // EPIPE when the program exits without reading its input: its exit status tells what happened.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    child.on('close', (code, signal) => resolve({ code: code ?? 128 + (signal === null ? 0 : 1), stdout, stderr }));
  });

/**
 * The executable `program` in PATH's directories, then the usual sbin ones (iptables and nft live
 * in /usr/sbin, which a user's PATH may lack); undefined when there is none.
 */
export function findProgram(program: string, searchPath = process.env.PATH ?? ''): string | undefined {
  return firstExecutable(program, [...searchPath.split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter((d) => d !== ''));
}

/** `dir/name` for the first of `dirs` where it is executable; undefined when none. */
export function firstExecutable(name: string, dirs: readonly string[]): string | undefined {
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next directory
    }
  }
  return undefined;
}

export function hasProgram(program: string): boolean {
  return findProgram(program) !== undefined;
}
