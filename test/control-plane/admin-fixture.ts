/**
 * What the control-plane tests share: one real etcd, the etcd store and admin app on top of it, a raw etcd3 client
 * to look at what was really written, and the seed document's route. Each test file builds one fixture in
 * before() and closes it in after().
 */
import { Etcd3 } from 'etcd3';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../control-plane/app.ts';
import { createEtcdStore } from '../../control-plane/store/etcd-store.ts';
import type { ResourceStore } from '../../control-plane/store/resource-store.ts';
import { DEFAULT_ALLOW_ADMIN, type AdminKey } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { after, before, beforeEach } from 'node:test';
import { startEtcd, type EtcdProcess } from '../helpers/etcd.ts';

export const ADMIN_KEY = 'test-admin-key-5f0c2a9e';
export const VIEWER_KEY = 'test-viewer-key-81d7b3c4';
export const PREFIX = '/apisix';
/** The keyring of the tests: a fresh first entry, then APISIX's documented one (so its test vectors decrypt). */
export const KEYRING = ['0123456789abcdef', 'edd1c9f0985e76a2'];

const KEYS: AdminKey[] = [
  { name: 'admin', key: ADMIN_KEY, role: 'admin' },
  { name: 'viewer', key: VIEWER_KEY, role: 'viewer' },
];

/** The route of the seed document (grpc-proxy.md), as curl sends it: with its newlines and indentation. */
export const SEED_ROUTE_BODY = `
{
    "methods": ["POST", "GET"],
    "uri": "/helloworld.Greeter/SayHello",
    "upstream": {
        "scheme": "grpc",
        "type": "roundrobin",
        "nodes": {
            "127.0.0.1:50051": 1
        }
    }
}`;

export const SEED_ROUTE = JSON.parse(SEED_ROUTE_BODY) as Record<string, unknown>;

/** What `curl -d` sends as Content-Type when none is given. */
export const CURL_FORM_TYPE = 'application/x-www-form-urlencoded';

export interface AdminFixture {
  etcd: EtcdProcess;
  store: ResourceStore;
  app: FastifyInstance;
  /** A plain etcd3 client, independent of the store, to read and write etcd directly. */
  raw: Etcd3;
  close(): Promise<void>;
}

export interface AppOverrides {
  allowAdmin?: string[];
  keyring?: string[];
}

/** An admin app on `store` with the test keys, loopback-only allow-list and KEYRING unless overridden. */
export function buildTestApp(store: ResourceStore, overrides: AppOverrides = {}): FastifyInstance {
  return buildApp({
    store,
    log: silentLogger(),
    config: {
      admin: { ip: '127.0.0.1', port: 0, keys: KEYS, allowAdmin: overrides.allowAdmin ?? [...DEFAULT_ALLOW_ADMIN] },
      dataEncryption: { keyring: overrides.keyring ?? KEYRING },
    },
  });
}

export async function startAdminFixture(): Promise<AdminFixture> {
  const etcd = await startEtcd();
  const log = silentLogger();
  const store = createEtcdStore({ hosts: [etcd.endpoint], prefix: PREFIX, timeoutMs: 3000, log });
  const app = buildTestApp(store);
  const raw = new Etcd3({ hosts: [etcd.endpoint] });
  return {
    etcd,
    store,
    app,
    raw,
    close: async () => {
      await app.close();
      await store.close();
      raw.close();
      await etcd.close();
    },
  };
}

/**
 * For a describe block: a fixture started before its tests, closed after them, with etcd emptied under PREFIX before
 * each test. Returns a getter (the fixture exists once `before` ran).
 */
export function adminFixtureEachTest(): () => AdminFixture {
  let fx: AdminFixture | undefined;
  before(async () => {
    fx = await startAdminFixture();
  });
  after(async () => {
    await fx?.close();
  });
  beforeEach(async () => {
    await fx?.raw.delete().prefix(`${PREFIX}/`).exec();
  });
  return () => {
    if (fx === undefined) throw new Error('the admin fixture is used before its before() hook ran');
    return fx;
  };
}

export interface AdminRequest {
  method: 'GET' | 'PUT' | 'DELETE' | 'POST' | 'PATCH' | 'HEAD';
  url: string;
  /** Sent as text with curl's form Content-Type unless `headers` says otherwise. */
  body?: string | object;
  /** Defaults to the admin key in X-API-KEY; pass `null` to send no key. */
  key?: string | null;
  headers?: Record<string, string>;
  /** The client's address as the admin API sees it (default 127.0.0.1). */
  remoteAddress?: string;
}

export async function admin(app: FastifyInstance, request: AdminRequest): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = {};
  const key = request.key === undefined ? ADMIN_KEY : request.key;
  if (key !== null) headers['x-api-key'] = key;
  if (request.body !== undefined) headers['content-type'] = CURL_FORM_TYPE;
  Object.assign(headers, request.headers);
  const payload = typeof request.body === 'object' ? JSON.stringify(request.body) : request.body;
  return app.inject({
    method: request.method,
    url: request.url,
    headers,
    ...(request.remoteAddress === undefined ? {} : { remoteAddress: request.remoteAddress }),
    ...(payload === undefined ? {} : { payload }),
  });
}

/** The JSON body of a response, as a plain record (the admin API only answers JSON objects). */
export function jsonOf(response: LightMyRequestResponse): Record<string, unknown> {
  return JSON.parse(response.body) as Record<string, unknown>;
}

/** The text stored at `key`, or null when etcd has no such key. */
export async function rawText(raw: Etcd3, key: string): Promise<string | null> {
  return raw.get(key).string();
}
