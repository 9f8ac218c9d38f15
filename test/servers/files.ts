import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';

/** Hands a directory tree to the OS user a server runs as. */
export function chownTo(dir: string, user: string): void {
  execFileSync('chown', ['-R', `${user}:`, dir]);
}

export function randomSecret(): string {
  return crypto.randomBytes(12).toString('hex');
}
