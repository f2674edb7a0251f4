/**
 * `npm run local-cluster`: the production shape on one machine, without Docker. A 3-member etcd cluster (data under
 * ./data/cluster/etcd-<n>; client ports 2379/22379/32379 as in etcd's own local-cluster Procfile, peer ports
 * 2380/22380/32380, where the Procfile has 12380 for the first), the control plane on 127.0.0.1:9080 with the
 * admin key of conf/config.yaml, and N data-plane replicas (`--replicas N`, default 3), each its own
 * `data-plane/main.ts` process following all three etcd members: replica i listens on h2c 9081+i, TLS 9443+i and
 * status 127.0.0.1:7085+i (i from 0).
 *
 * It prints where everything listens, waits until every replica's /readyz answers 200, prints `ready`, and on
 * Ctrl-C or SIGTERM stops the replicas (they drain), then the control plane, then etcd: SIGTERM first, SIGKILL
 * after a bound. An etcd member that dies is reported and the rest goes on (two of three keep quorum), so a member
 * can be killed by hand to watch the gateway carry on; the control plane or the last replica dying stops it all.
 * (Ctrl-C in a terminal also reaches every child directly, as they share the terminal's process group, as with
 * `npm start`; a SIGTERM sent to this process alone stops them in the order above.) A second signal kills at once.
 *
 * Every port and the data folder can be changed by flag or environment variable (`--help`), so tests run it on free
 * ports. A data folder remembers the ports its cluster was created with: etcd stores its members' peer URLs in its
 * data, so a folder is refused with other ports rather than started into a cluster that cannot form.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { REPO_ROOT, loadConfig } from '../shared/config.ts';
import { describe } from '../shared/errors.ts';
import { dataPlaneNodeFlags } from '../data-plane/node-flags.ts';
import {
  clientUrl,
  etcdHealthy,
  etcdInstalled,
  etcdIsLeader,
  etcdMemberArgs,
  ETCD_INSTALL_HINT,
  entryPoint,
  hasExited,
  killChild,
  stopChild,
  waitFor,
  type EtcdClusterSpec,
  type EtcdMemberSpec,
} from './local-processes.ts';

/** The cluster's `--initial-cluster-token`; fixed, since the data folder is this script's own. */
const CLUSTER_TOKEN = 'grpc-gateway-local-cluster';
const ETCD_HOST = '127.0.0.1';
/** A fresh cluster elects a leader in ~1 s; a restart on an existing folder replays its WAL first. */
const ETCD_READY_LIMIT_MS = 30_000;
/** Several processes starting at once on a small machine take a while. */
const PROCESS_READY_LIMIT_MS = 60_000;
/** Replicas drain calls in flight for worker_shutdown_timeout (10 s by default) before they exit. */
const REPLICA_STOP_GRACE_MS = 15_000;
const CONTROL_PLANE_STOP_GRACE_MS = 5_000;
const ETCD_STOP_GRACE_MS = 10_000;

interface Options {
  replicas: number;
  /** GATEWAY_WORKER_PROCESSES of each replica: a count or `auto`. */
  workers: string;
  dataDir: string;
  etcdClientPorts: number[];
  etcdPeerPorts: number[];
  adminPort: number;
  h2cPort: number;
  tlsPort: number;
  statusPort: number;
}

/** Flag, environment variable, default and meaning of every option; `--help` prints this table. */
const OPTIONS = [
  { flag: '--replicas', env: 'LOCAL_CLUSTER_REPLICAS', def: '3', help: 'data-plane replicas, each its own process' },
  { flag: '--workers', env: 'LOCAL_CLUSTER_WORKERS', def: '1', help: 'worker processes per replica (a number or auto)' },
  { flag: '--data-dir', env: 'LOCAL_CLUSTER_DATA_DIR', def: 'data/cluster', help: 'etcd data (etcd-<n>), logs and config caches' },
  { flag: '--etcd-client-ports', env: 'LOCAL_CLUSTER_ETCD_CLIENT_PORTS', def: '2379,22379,32379', help: 'one client port per etcd member' },
  { flag: '--etcd-peer-ports', env: 'LOCAL_CLUSTER_ETCD_PEER_PORTS', def: '2380,22380,32380', help: 'one peer port per etcd member' },
  { flag: '--admin-port', env: 'LOCAL_CLUSTER_ADMIN_PORT', def: '9080', help: 'admin API port' },
  { flag: '--h2c-port', env: 'LOCAL_CLUSTER_H2C_PORT', def: '9081', help: 'h2c port of replica 0; replica i uses this + i' },
  { flag: '--tls-port', env: 'LOCAL_CLUSTER_TLS_PORT', def: '9443', help: 'TLS port of replica 0; replica i uses this + i' },
  { flag: '--status-port', env: 'LOCAL_CLUSTER_STATUS_PORT', def: '7085', help: 'status port of replica 0; replica i uses this + i' },
] as const;

type Role = 'etcd' | 'control-plane' | 'data-plane';

interface Child {
  name: string;
  role: Role;
  proc: ChildProcess;
  /** etcd members: the client URL. */
  endpoint?: string;
}

const children: Child[] = [];
let phase: 'starting' | 'running' | 'stopping' = 'starting';
let startupFailure: string | undefined;
let memberCount = 0;

function say(line: string): void {
  process.stdout.write(`[local-cluster] ${line}\n`);
}

class UsageError extends Error {}

function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): Options {
  const values = new Map<string, string>();
  for (const option of OPTIONS) values.set(option.flag, env[option.env] || option.def);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    if (!OPTIONS.some((o) => o.flag === flag)) throw new UsageError(`unknown option ${arg}`);
    const value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined || value === '') throw new UsageError(`${flag} needs a value`);
    values.set(flag, value);
  }
  const get = (flag: string): string => values.get(flag) ?? '';
  const options: Options = {
    replicas: count(get('--replicas'), '--replicas', 1),
    workers: workers(get('--workers')),
    dataDir: resolve(process.cwd(), get('--data-dir')),
    etcdClientPorts: get('--etcd-client-ports').split(',').map((p) => portNumber(p, '--etcd-client-ports')),
    etcdPeerPorts: get('--etcd-peer-ports').split(',').map((p) => portNumber(p, '--etcd-peer-ports')),
    adminPort: portNumber(get('--admin-port'), '--admin-port'),
    h2cPort: portNumber(get('--h2c-port'), '--h2c-port'),
    tlsPort: portNumber(get('--tls-port'), '--tls-port'),
    statusPort: portNumber(get('--status-port'), '--status-port'),
  };
  if (options.etcdClientPorts.length !== options.etcdPeerPorts.length) {
    throw new UsageError('--etcd-client-ports and --etcd-peer-ports must name as many ports each (one per member)');
  }
  for (const base of ['h2cPort', 'tlsPort', 'statusPort'] as const) {
    if (options[base] + options.replicas - 1 > 65_535) throw new UsageError(`${options.replicas} replicas do not fit above port ${options[base]}`);
  }
  return options;
}

function count(text: string, what: string, min: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > 64) throw new UsageError(`${what}: expected a whole number from ${min} to 64, got "${text}"`);
  return n;
}

function workers(text: string): string {
  if (text === 'auto') return text;
  return String(count(text, '--workers', 1));
}

function portNumber(text: string, what: string): number {
  const n = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || n < 1 || n > 65_535) throw new UsageError(`${what}: "${text}" is not a port`);
  return n;
}

function usage(): string {
  const lines = OPTIONS.map((o) => `  ${`${o.flag} <value>`.padEnd(28)} ${o.help} (default ${o.def}; env ${o.env})`);
  return `usage: npm run local-cluster -- [options]\n${lines.join('\n')}\n`;
}

/** Every port this run will listen on, with what it is for; refuses duplicates and ports already taken. */
async function checkPorts(options: Options, grpcIp: string, tlsIp: string, adminIp: string): Promise<void> {
  const wanted: { ip: string; port: number; what: string }[] = [];
  options.etcdClientPorts.forEach((port, i) => wanted.push({ ip: ETCD_HOST, port, what: `etcd-${i + 1} client` }));
  options.etcdPeerPorts.forEach((port, i) => wanted.push({ ip: ETCD_HOST, port, what: `etcd-${i + 1} peer` }));
  wanted.push({ ip: adminIp, port: options.adminPort, what: 'admin API' });
  for (let i = 0; i < options.replicas; i++) {
    wanted.push({ ip: grpcIp, port: options.h2cPort + i, what: `replica ${i} h2c` });
    wanted.push({ ip: tlsIp, port: options.tlsPort + i, what: `replica ${i} TLS` });
    wanted.push({ ip: '127.0.0.1', port: options.statusPort + i, what: `replica ${i} status` });
  }
  const seen = new Map<number, string>();
  for (const { port, what } of wanted) {
    const other = seen.get(port);
    if (other !== undefined) throw new UsageError(`port ${port} is wanted for both ${other} and ${what}; choose other ports`);
    seen.set(port, what);
  }
  for (const { ip, port, what } of wanted) {
    if (!(await canListen(ip, port))) {
      throw new Error(`port ${port} (${what}) is already in use: is npm start or another local cluster running? (see --help to move it)`);
    }
  }
}

function canListen(ip: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, ip, () => server.close(() => done(true)));
  });
}

/**
 * etcd keeps its members' peer URLs in its data: a folder made for other ports would start members that can never
 * reach each other. The ports are written next to the members' folders and checked on every start.
 */
function prepareDataDir(options: Options): void {
  mkdirSync(options.dataDir, { recursive: true });
  const layoutFile = join(options.dataDir, 'cluster.json');
  const layout = { token: CLUSTER_TOKEN, clientPorts: options.etcdClientPorts, peerPorts: options.etcdPeerPorts };
  if (existsSync(layoutFile)) {
    const before = readFileSync(layoutFile, 'utf8').trim();
    if (before !== JSON.stringify(layout)) {
      throw new Error(
        `${layoutFile} says this data folder belongs to another cluster layout (${before}); ` +
          `use the same etcd ports, another --data-dir, or delete the folder to start an empty cluster`,
      );
    }
  } else {
    writeFileSync(layoutFile, JSON.stringify(layout));
  }
}

function start(
  name: string,
  role: Role,
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; logFile?: string; endpoint?: string } = {},
): Child {
  const out = options.logFile === undefined ? 'inherit' : openSync(options.logFile, 'a');
  const proc = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', out, out], env: options.env ?? process.env });
  if (typeof out === 'number') closeSync(out); // the child has its own copy
  const child: Child = { name, role, proc, ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }) };
  children.push(child);
  proc.once('error', (err) => onExit(child, `could not start: ${err.message}`));
  proc.once('exit', (code, signal) => onExit(child, signal === null ? `code ${String(code)}` : `signal ${signal}`));
  return child;
}

function onExit(child: Child, how: string): void {
  if (phase === 'stopping') return;
  if (phase === 'starting') {
    startupFailure ??= `${child.name} exited during start-up (${how})`;
    return;
  }
  if (child.role === 'etcd') {
    const left = children.filter((c) => c.role === 'etcd' && !hasExited(c.proc)).length;
    const quorum = Math.floor(memberCount / 2) + 1;
    say(`${child.name} exited (${how}); ${left} of ${memberCount} etcd members running` +
      (left >= quorum ? '; the cluster keeps quorum' : `; quorum (${quorum}) lost: admin writes fail until members return`));
    return;
  }
  if (child.role === 'data-plane' && children.some((c) => c.role === 'data-plane' && !hasExited(c.proc))) {
    say(`${child.name} exited (${how}); the other replicas keep serving`);
    return;
  }
  say(`${child.name} exited (${how}); stopping everything`);
  void stopAll(1);
}

/** Fails start-up as soon as a child has exited, instead of waiting out the bound. */
function abortIfAChildExited(): string | undefined {
  return startupFailure;
}

async function stopAll(code: number): Promise<void> {
  if (phase === 'stopping') return;
  phase = 'stopping';
  const running = (role: Role): Child[] => children.filter((c) => c.role === role && !hasExited(c.proc));
  const replicas = running('data-plane');
  if (replicas.length > 0) say(`stopping ${replicas.length} replica(s) (they drain calls in flight)`);
  // Replicas first, etcd last, so the planes never see their store vanish while they drain.
  await Promise.all(replicas.map((c) => stopChild(c.proc, REPLICA_STOP_GRACE_MS)));
  await Promise.all(running('control-plane').map((c) => stopChild(c.proc, CONTROL_PLANE_STOP_GRACE_MS)));
  // Followers before the leader: a leader stopped while its peers are up hands its leadership over first, and one
  // stopped together with them waits for a transfer that cannot finish (etcd's "leader transfer took too long").
  const members = running('etcd');
  const leader = await findLeader(members);
  await Promise.all(members.filter((c) => c !== leader).map((c) => stopChild(c.proc, ETCD_STOP_GRACE_MS)));
  if (leader !== undefined) await stopChild(leader.proc, ETCD_STOP_GRACE_MS);
  say('stopped');
  process.exit(code);
}

async function findLeader(members: readonly Child[]): Promise<Child | undefined> {
  const answers = await Promise.all(members.map((c) => (c.endpoint === undefined ? Promise.resolve(undefined) : etcdIsLeader(c.endpoint))));
  return members[answers.indexOf(true)];
}

/** A second Ctrl-C does not wait for the drain. */
function onSignal(): void {
  if (phase !== 'stopping') {
    void stopAll(0);
    return;
  }
  say('second signal: killing every child now');
  void Promise.all(children.map((c) => killChild(c.proc))).then(() => process.exit(1));
}

process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// Last resort if this process dies of an error: no child outlives it.
process.on('exit', () => {
  for (const { proc } of children) if (!hasExited(proc)) proc.kill('SIGKILL');
});

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage());
    process.exit(0);
  }
  const options = parseOptions(argv, process.env);
  if (!etcdInstalled()) throw new Error(`${ETCD_INSTALL_HINT} (then run npm run local-cluster again)`);

  const hosts = options.etcdClientPorts.map((port) => clientUrl({ host: ETCD_HOST, clientPort: port }));
  const config = loadConfig({ ...process.env, GATEWAY_ETCD_HOSTS: hosts.join(',') });
  const grpcIp = config.nodeListen[0]?.ip ?? '0.0.0.0';
  const tlsIp = config.ssl.listen[0]?.ip ?? '0.0.0.0';
  const adminIp = config.admin.ip;
  await checkPorts(options, grpcIp, tlsIp, adminIp);
  prepareDataDir(options);

  // etcd
  const members: EtcdMemberSpec[] = options.etcdClientPorts.map((clientPort, i) => ({
    name: `etcd-${i + 1}`,
    host: ETCD_HOST,
    clientPort,
    peerPort: options.etcdPeerPorts[i] ?? 0,
    dataDir: join(options.dataDir, `etcd-${i + 1}`),
  }));
  memberCount = members.length;
  const cluster: EtcdClusterSpec = { members, token: CLUSTER_TOKEN, logLevel: 'warn' };
  for (const member of members) {
    // An existing member rejoins from its WAL; etcd wants its data folder private.
    const state = existsSync(join(member.dataDir, 'member')) ? 'existing' : 'new';
    mkdirSync(member.dataDir, { recursive: true, mode: 0o700 });
    start(member.name, 'etcd', 'etcd', etcdMemberArgs(cluster, member, state), {
      logFile: `${member.dataDir}.log`,
      endpoint: clientUrl(member),
    });
  }
  await Promise.all(
    members.map((m) =>
      waitFor(`${m.name} (${clientUrl(m)}) did not become healthy`, () => etcdHealthy(clientUrl(m)), ETCD_READY_LIMIT_MS, {
        abort: abortIfAChildExited,
      }),
    ),
  );

  // control plane
  const adminKey = config.admin.keys.find((k) => k.role === 'admin')?.key ?? '';
  const adminUrl = `http://${adminIp.includes(':') ? `[${adminIp}]` : adminIp}:${options.adminPort}/apisix/admin`;
  const planeEnv = { ...process.env, GATEWAY_ETCD_HOSTS: hosts.join(',') };
  const controlPlane = start('control-plane', 'control-plane', process.execPath, [entryPoint('control-plane/main')], {
    env: { ...planeEnv, GATEWAY_ADMIN_LISTEN: `${adminIp}:${options.adminPort}` },
  });
  await waitFor('the admin API did not answer 200', () => answers(`${adminUrl}/routes`, { 'X-API-KEY': adminKey }), PROCESS_READY_LIMIT_MS, {
    abort: abortIfAChildExited,
  });

  // data-plane replicas
  const replicas = Array.from({ length: options.replicas }, (_, i) => {
    const status = `http://127.0.0.1:${options.statusPort + i}`;
    const child = start(`replica-${i}`, 'data-plane', process.execPath, [...dataPlaneNodeFlags(), entryPoint('data-plane/main')], {
      env: {
        ...planeEnv,
        GATEWAY_H2C_LISTEN: `${grpcIp}:${options.h2cPort + i}`,
        GATEWAY_TLS_LISTEN: `${tlsIp}:${options.tlsPort + i}`,
        GATEWAY_STATUS_LISTEN: `127.0.0.1:${options.statusPort + i}`,
        GATEWAY_WORKER_PROCESSES: options.workers,
        // Each replica keeps its own copy of the last config, to start from while etcd is down.
        GATEWAY_SNAPSHOT_CACHE: join(options.dataDir, `config-cache-${i}.json`),
      },
    });
    return { i, status, child };
  });
  await Promise.all(
    replicas.map(({ i, status }) =>
      waitFor(`replica ${i}: ${status}/readyz did not answer 200`, () => answers(`${status}/readyz`), PROCESS_READY_LIMIT_MS, {
        abort: abortIfAChildExited,
      }),
    ),
  );
  phase = 'running';

  const shown = (path: string): string => {
    const rel = relative(process.cwd(), path);
    return rel.startsWith('..') ? path : rel;
  };
  for (const m of members) {
    const child = children.find((c) => c.name === m.name);
    say(`${m.name}     ${clientUrl(m)}  peer :${m.peerPort}  pid ${String(child?.proc.pid)}  data ${shown(m.dataDir)}  log ${shown(`${m.dataDir}.log`)}`);
  }
  say(`admin API  ${adminUrl}  (X-API-KEY: ${adminKey})  pid ${String(controlPlane.proc.pid)}`);
  for (const { i, status, child } of replicas) {
    const tls = config.ssl.enable ? `  TLS ${tlsIp}:${options.tlsPort + i}` : '';
    say(`replica-${i}  h2c ${grpcIp}:${options.h2cPort + i}${tls}  status ${status}/readyz  pid ${String(child.proc.pid)}  workers ${options.workers}`);
  }
  say(`etcd hosts of every plane: ${hosts.join(',')}`);
  say('ready (Ctrl-C stops everything)');
}

async function answers(url: string, headers: Record<string, string> = {}): Promise<boolean> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

try {
  await main();
} catch (err) {
  if (err instanceof UsageError) process.stderr.write(`${err.message}\n${usage()}`);
  say(`cannot start: ${describe(err)}`);
  await stopAll(1);
}
