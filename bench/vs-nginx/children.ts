/**
 * Every process the benchmark starts is registered here, so that the end of a run, a failure, Ctrl-C or SIGTERM
 * stops all of them: each is asked to stop (its own stop(), or SIGTERM), then it and every descendant it had
 * (workers) still alive after a grace period is killed by pid. Nothing is killed by name.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { identities, processTree, stillAlive } from './proc.ts';
import { keepOutputTail, stopChild } from '../../scripts/local-processes.ts';

const GRACE_MS = 6_000;
const OUTPUT_TAIL_CHARS = 8_000;

interface Registered {
  name: string;
  pid: number;
  /** The process's start time when it was registered: a later process reusing the pid is not ours. */
  identity: number | undefined;
  stop: () => Promise<void>;
}

const registry: Registered[] = [];
let stoppingAll: Promise<void> | undefined;

/** Registers a process started elsewhere (bench/lib's gateway processes, etcd), with its own stop(). */
export function register(name: string, pid: number, stop: () => Promise<void>): () => void {
  // Started while everything stops (a step that was under way at Ctrl-C): stop it at once.
  if (stoppingAll !== undefined) {
    void stop();
    return () => undefined;
  }
  const entry: Registered = { name, pid, identity: identities([pid]).get(pid), stop };
  registry.push(entry);
  return () => {
    const index = registry.indexOf(entry);
    if (index >= 0) registry.splice(index, 1);
  };
}

export interface Spawned {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly exited: boolean;
  /** Resolves with the exit code (or signal name) once the process exited. */
  readonly exit: Promise<number | string>;
  output(): string;
  stop(): Promise<void>;
}

/** Spawns a registered child; its stdout/stderr are kept (the tail) to explain a failure. */
export function spawnTracked(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Spawned {
  if (stoppingAll !== undefined) throw new Error(`not starting ${name}: the benchmark is stopping`);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const tail = keepOutputTail(child, OUTPUT_TAIL_CHARS);
  let exited = false;
  const exit = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', (err) => {
      exited = true;
      tail.note(`[spawn failed: ${err.message}]`);
      resolve('spawn-error');
    });
  });
  let stopping: Promise<void> | undefined;
  const spawned: Spawned = {
    name,
    pid: child.pid ?? 0,
    child,
    get exited() {
      return exited;
    },
    exit,
    output: () => tail.text(),
    stop() {
      // SIGTERM, SIGKILL if it has not exited within GRACE_MS.
      stopping ??= stopChild(child, GRACE_MS);
      return stopping;
    },
  };
  if (spawned.pid !== 0) {
    const unregister = register(name, spawned.pid, () => spawned.stop());
    void exit.then(unregister);
  }
  return spawned;
}

/** Stops everything registered, newest first; then kills by pid any process of their trees still alive. */
export function stopAll(): Promise<void> {
  stoppingAll ??= (async () => {
    const entries = registry.splice(0).reverse();
    for (const entry of entries) {
      const ours = entry.identity !== undefined && stillAlive(new Map([[entry.pid, entry.identity]])).length === 1;
      const tree = identities(ours ? processTree([entry.pid]) : []);
      try {
        await Promise.race([entry.stop(), sleep(GRACE_MS + 2_000)]);
      } catch {
        // killed below
      }
      for (const pid of stillAlive(tree)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  })();
  return stoppingAll;
}

/** Ctrl-C and SIGTERM stop every child before the benchmark exits. */
export function stopAllOnSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n[bench] ${signal}: stopping everything\n`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}
