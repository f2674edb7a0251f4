/**
 * A server binary the tests run (etcd, redis-server): spawned with its stderr kept (the last 4,000 characters, for
 * the error if it dies), and awaited until `ready` resolves; it rejects, naming `installHint`, when the binary is
 * missing, and with its stderr when it exits first. killService stops one (SIGKILL; SIGCONT first, for a server a
 * test froze with SIGSTOP).
 */
import { spawn, type ChildProcess } from 'node:child_process';

export async function startService(command: string, args: readonly string[], installHint: string, ready: () => Promise<void>): Promise<ChildProcess> {
  const proc = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<never>((_, reject) => {
    proc.once('error', (err) => reject(new Error(`${installHint}: ${err.message}`)));
    proc.once('exit', (code) => reject(new Error(`${command} exited with ${String(code)}: ${stderr}`)));
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([ready(), exited]);
  } catch (err) {
    await killService(proc);
    throw err;
  }
  return proc;
}

export async function killService(proc: ChildProcess | undefined): Promise<void> {
  if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill('SIGCONT');
    proc.kill('SIGKILL');
  });
}
