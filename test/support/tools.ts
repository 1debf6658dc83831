// Whether a command-line tool the tests drive (actool, gpg, openssl, ...) is on this machine.
// Tests that need one skip with the reason when it is missing; scripts/setup.sh installs them.
import { execFileSync } from 'node:child_process';

export function hasCommand(command: string, args: string[] = ['--version']): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}
