/**
 * One etcd member as the control plane's store sees it: its own etcd3 client (bound to that member alone) and a
 * circuit that says whether calls should go there.
 *
 * Why one client per member: etcd3 picks a random host for every call and only leaves a host after errors it
 * classes as recoverable, three in a row (its default cockatiel breaker). A member that hangs (SIGSTOP, a paused VM,
 * a black-holed host) accepts TCP and answers nothing, so each call that lands on it waits for its whole deadline:
 * the admin API answered 503 after 5 s for one call in three while one of three members hung (issue #11, case 10).
 * APISIX's etcd client marks a failing endpoint unhealthy and moves on (lua-resty-etcd `health_check`, max_fails,
 * fail_timeout = `deployment.etcd.health_check_timeout`); this is the same idea, with the choice of member ours.
 *
 * The circuit opens when the member did not answer (an attempt timed out) or could not be reached. An open member
 * is not chosen while a closed one exists; a background probe (Maintenance.Status, which every member answers
 * locally without the leader) closes it again as soon as the member answers anything, and retries every
 * PROBE_INTERVAL_MS while it does not. So no admin request pays for finding out that a member is back, and a member
 * that merely had no leader during an election (it answers Status at once) is back in service right away.
 */
import { Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError, type IOptions } from 'etcd3';
import type { Logger } from '../../shared/logger.ts';

/** Re-probe period of a member whose circuit is open; APISIX's `health_check_timeout` is 10 s, a probe is cheap. */
const PROBE_INTERVAL_MS = 2_000;

type FaultPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/**
 * etcd3's fault handling switched off: no retry of its own (which would multiply the attempt deadline on a hung
 * member) and no breaker of its own (the circuit is ours, see above). cockatiel's `noop`, written out so the store
 * does not import a dependency of etcd3 that the project does not declare.
 */
const PASS_THROUGH: FaultPolicy = {
  _altReturn: undefined as never, // eslint-disable-line @typescript-eslint/no-deprecated -- IPolicy requires this type-only member, which cockatiel marks @deprecated
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
  execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
};

export function etcdClientFor(host: string, options: IOptions): Etcd3 {
  return new Etcd3({ ...options, hosts: [host], faultHandling: { host: () => PASS_THROUGH, global: PASS_THROUGH } });
}

export class EtcdMember {
  readonly host: string;
  readonly client: Etcd3;
  readonly #log: Logger;
  readonly #probeTimeoutMs: number;
  /** 0 while closed; when the circuit opened otherwise (open members are tried oldest first when none is closed). */
  #openedAt = 0;
  #probe: NodeJS.Timeout | undefined;
  #probing = false;
  #closed = false;

  constructor(host: string, client: Etcd3, probeTimeoutMs: number, log: Logger) {
    this.host = host;
    this.client = client;
    this.#probeTimeoutMs = probeTimeoutMs;
    this.#log = log;
  }

  get open(): boolean {
    return this.#openedAt !== 0;
  }

  get openedAt(): number {
    return this.#openedAt;
  }

  /** The member answered: close the circuit. */
  answered(): void {
    if (this.#openedAt === 0) return;
    this.#openedAt = 0;
    clearTimeout(this.#probe);
    this.#probe = undefined;
    this.#log.info({ host: this.host }, 'etcd member answers again, back in use');
  }

  /** The member did not answer or could not be reached: open the circuit and probe it now, then periodically. */
  unresponsive(reason: string): void {
    if (this.#closed) return;
    if (this.#openedAt === 0) {
      this.#openedAt = Date.now();
      this.#log.warn({ host: this.host, reason }, 'etcd member not answering, moving to the next member');
    }
    this.#startProbe(0);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#probe);
    this.#probe = undefined;
    this.client.close();
  }

  #startProbe(delayMs: number): void {
    if (this.#probing || this.#probe !== undefined || this.#closed) return;
    this.#probe = setTimeout(() => {
      this.#probe = undefined;
      void this.#runProbe();
    }, delayMs);
    this.#probe.unref();
  }

  async #runProbe(): Promise<void> {
    this.#probing = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#probeTimeoutMs);
      timer.unref();
    });
    // Any answer, an error from etcd included, proves the member is alive; only silence or a refused connection
    // keeps the circuit open.
    const status = this.client.maintenance.status().then(
      () => 'answered' as const,
      (err: unknown) => (isSilent(memberFault(err)) ? ('silent' as const) : ('answered' as const)),
    );
    const outcome = await Promise.race([status, timeout]);
    clearTimeout(timer);
    this.#probing = false;
    if (this.#closed) return;
    if (outcome === 'answered') this.answered();
    else if (this.#openedAt !== 0) this.#startProbe(PROBE_INTERVAL_MS);
  }
}

/**
 * What a failed call says about the member it ran on:
 * - `silent`: no answer in time (a hung member, or one that cannot reach its leader): try another member;
 * - `unreachable`: the connection could not be made (grpc-js UNAVAILABLE without an etcd message): another member;
 * - `answered`: etcd itself answered with a transient error (`etcdserver: no leader`, `request timed out`, `leader
 *   changed`, `too many requests`): the member is alive, try another one for this call without blaming it;
 * - `fatal`: anything else (permission denied, a request too large, a closed client): the same on every member.
 */
export type MemberFault = 'silent' | 'unreachable' | 'answered' | 'fatal';

/** The faults that open a member's circuit: it gave no answer at all. */
export function isSilent(fault: MemberFault): boolean {
  return fault === 'silent' || fault === 'unreachable';
}

const ETCD_MESSAGE = 'etcdserver:';

export function memberFault(err: unknown): MemberFault {
  if (err instanceof AttemptTimeout) return 'silent';
  // etcd3 marks the errors that may go away on another member or a moment later (cancelled, unknown, deadline,
  // resource exhausted, aborted, internal, unavailable) with its RecoverableError symbol.
  if (!(err instanceof Error) || !isRecoverableError(err)) return 'fatal';
  if (err.message.includes(ETCD_MESSAGE)) return 'answered';
  if (err instanceof GRPCDeadlineExceededError) return 'silent';
  if (err instanceof GRPCUnavailableError) return 'unreachable';
  return 'answered';
}

/** Our own bound on one attempt, in case the gRPC deadline is not honoured (e.g. authentication still pending). */
export class AttemptTimeout extends Error {
  constructor(host: string, ms: number) {
    super(`${host} did not answer within ${ms} ms`);
  }
}
