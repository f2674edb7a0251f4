/**
 * Runs each etcd call of the control plane's store on one member at a time, moving to the next member when an
 * attempt fails in a way another member may not (etcd-member.ts: silent, unreachable, or a transient etcd error).
 *
 * - Every attempt has a short deadline (ATTEMPT_TIMEOUT_MS) inside the call's overall bound (the store's 5 s): a
 *   hung member costs one attempt, not the whole call. etcd answers a healthy unary KV call in milliseconds; what
 *   takes longer is a member that cannot answer (frozen, or waiting for a leader that is gone), and there the
 *   right move is another member or, during an election, another try a moment later.
 * - The member that answered last is used until it fails ("pinned", as etcd's own clientv3 balancer in 3.3), so a
 *   hung member is met at most once before its circuit opens. The first pin is the first host listed: the control
 *   plane's traffic is small and every write goes through the leader anyway, so spreading it buys nothing, and a
 *   predictable member is easier to reason about. Open members are skipped while any member is closed.
 * - Retrying is the caller's business to make safe: every call the store makes is a read, an idempotent write, or
 *   a transaction guarded by a compare on mod_revision (a second apply fails the compare, and the store then reads
 *   back whether its value is there). The attempt number is passed to the call so it can tell a first try from one
 *   whose predecessor may have been applied.
 * - If a whole round found every member unreachable (connection refused), the call fails at once: no leader can
 *   come out of members that are down, and the admin API answers 503 without waiting for its bound.
 */
import type { Etcd3, IOptions } from 'etcd3';
import { describe } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import { AttemptTimeout, EtcdMember, etcdClientFor, isSilent, memberFault } from './etcd-member.ts';

/**
 * Deadline of one attempt on one member. Long enough for a healthy member under load (a txn takes milliseconds),
 * short enough that a hung member costs a fraction of the 5 s an admin request may take, and near etcd's default
 * election timeout (1 s), after which a new leader can take the write.
 */
export const ATTEMPT_TIMEOUT_MS = 1_000;
/** Pause between rounds over the members (e.g. while they elect a leader), so that errors answered at once do not spin. */
const ROUND_PAUSE_MS = 100;

export interface MemberPoolOptions {
  hosts: readonly string[];
  /** Bound of one call, all attempts included. */
  callTimeoutMs: number;
  /** etcd3 options shared by every member's client (credentials, call options, channel options). */
  clientOptions: IOptions;
  log: Logger;
}

/** A call to run on a member's client; `attempt` counts from 1 over every member tried for this call. */
export type MemberCall<T> = (client: Etcd3, attempt: number) => Promise<T>;

export class MemberPool {
  readonly #members: EtcdMember[];
  readonly #callTimeoutMs: number;
  readonly #attemptTimeoutMs: number;
  #pinned = 0;
  #closed = false;

  constructor(options: MemberPoolOptions) {
    if (options.hosts.length === 0) throw new Error('no etcd host configured');
    this.#callTimeoutMs = options.callTimeoutMs;
    this.#attemptTimeoutMs = Math.min(ATTEMPT_TIMEOUT_MS, options.callTimeoutMs);
    const log = options.log.child({ module: 'etcd-members' });
    this.#members = options.hosts.map(
      (host) => new EtcdMember(host, etcdClientFor(host, options.clientOptions), this.#attemptTimeoutMs, log),
    );
  }

  /** The members' circuits, for logs and tests: host → open. */
  circuits(): { host: string; open: boolean }[] {
    return this.#members.map((m) => ({ host: m.host, open: m.open }));
  }

  async run<T>(call: MemberCall<T>): Promise<T> {
    const deadline = Date.now() + this.#callTimeoutMs;
    const failures = new Map<string, string>();
    let attempt = 0;
    while (!this.#closed) {
      let everyoneUnreachable = true;
      for (const member of this.#order()) {
        const left = deadline - Date.now();
        // `as boolean`: close() may have run during the last await, which TypeScript's narrowing does not see.
        if ((this.#closed as boolean) || left <= 0) break;
        attempt += 1;
        try {
          const value = await attempted(call(member.client, attempt), member.host, Math.min(this.#attemptTimeoutMs, left));
          member.answered();
          this.#pinned = this.#members.indexOf(member);
          return value;
        } catch (err) {
          const fault = memberFault(err);
          if (fault === 'fatal') throw err;
          failures.set(member.host, describe(err));
          if (fault !== 'unreachable') everyoneUnreachable = false;
          if (isSilent(fault)) member.unresponsive(describe(err));
        }
      }
      const left = deadline - Date.now();
      if (everyoneUnreachable || left <= ROUND_PAUSE_MS) break;
      await pause(ROUND_PAUSE_MS);
    }
    if (this.#closed) throw new Error('the store is closed');
    const detail = [...failures].map(([host, why]) => `${host}: ${why}`).join('; ');
    throw new Error(detail === '' ? `no etcd member answered within ${this.#callTimeoutMs} ms` : detail);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const member of this.#members) member.close();
  }

  /**
   * One round: the closed members starting at the pinned one; when every circuit is open, all of them, the one
   * open longest first (it is the likeliest to be back, and the call must try something).
   */
  #order(): EtcdMember[] {
    const count = this.#members.length;
    const ring: EtcdMember[] = [];
    for (let i = 0; i < count; i++) {
      const member = this.#members[(this.#pinned + i) % count];
      if (member !== undefined) ring.push(member);
    }
    const closed = ring.filter((m) => !m.open);
    if (closed.length > 0) return closed;
    return ring.sort((a, b) => a.openedAt - b.openedAt);
  }
}

/** `call` bounded by `ms` (the gRPC deadline bounds it too; this one also covers a pending authentication). */
async function attempted<T>(call: Promise<T>, host: string, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AttemptTimeout(host, ms)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([call, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
