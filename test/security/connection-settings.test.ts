/**
 * The settings behind the connection limits and the log line they write (issue #11 case 7): the shipped
 * conf/config.yaml states the defaults the code uses, values that would disable a limit by accident (a timer
 * overflowing to 1 ms, a negative cap) are refused with the setting's name, and a flood of refusals becomes a
 * handful of counted warning lines instead of one per refused connection.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { capForOpenFileLimit } from '../../data-plane/limits/connection-guard.ts';
import { limitedLog } from '../../data-plane/limits/limited-log.ts';
import { DEFAULT_CONFIG_PATH, parseConfig } from '../../shared/config.ts';
import { DEFAULT_CONNECTION_LIMITS } from '../../shared/config-connections.ts';
import { captureLog } from './connection-kit.ts';

describe('connection limit settings', () => {
  test('the shipped conf/config.yaml documents exactly the defaults an empty config gets', () => {
    const shipped = parseConfig(readFileSync(DEFAULT_CONFIG_PATH, 'utf8')).connections;
    assert.deepEqual(shipped, DEFAULT_CONNECTION_LIMITS);
    assert.deepEqual(parseConfig('').connections, DEFAULT_CONNECTION_LIMITS);
  });

  test('nginx names and duration forms are read', () => {
    const limits = parseConfig(`
nginx_config:
  max_connections_per_ip: 0
  event: { worker_connections: 50 }
  http: { client_header_timeout: 500ms, keepalive_timeout: 2m, client_body_timeout: 30s }
`).connections;
    assert.deepEqual(limits, { headerTimeoutMs: 500, keepaliveTimeoutMs: 120_000, bodyTimeoutMs: 30_000, maxConnections: 50, maxConnectionsPerIp: 0 });
  });

  test('a timeout beyond what a timer can hold is refused instead of firing after 1 ms', () => {
    assert.throws(() => parseConfig('nginx_config: { http: { keepalive_timeout: 3000000 } }'), /nginx_config\.http\.keepalive_timeout: expected from/);
    assert.throws(() => parseConfig('nginx_config: { http: { client_header_timeout: 0 } }'), /client_header_timeout: expected from 100ms/);
    assert.throws(() => parseConfig('nginx_config: { http: { client_header_timeout: soon } }'), /client_header_timeout: expected seconds/);
  });

  test('a cap that is not a whole number in range is refused rather than read as no cap', () => {
    assert.throws(() => parseConfig('nginx_config: { event: { worker_connections: 0 } }'), /worker_connections: expected a whole number from 1/);
    assert.throws(() => parseConfig('nginx_config: { max_connections_per_ip: -1 }'), /max_connections_per_ip: expected a whole number from 0/);
    assert.throws(() => parseConfig('nginx_config: { max_connections_per_ip: 2.5 }'), /max_connections_per_ip/);
    assert.throws(() => parseConfig('nginx_config: { max_connections_per_ip: "many" }'), /max_connections_per_ip: expected a whole number from 0 to 10000000, got "many"/);
  });

  test('worker_connections is kept below the open-file limit so that the process never meets EMFILE first', () => {
    const limits = (soft: string): string => `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                ${soft}                files\n`;
    assert.deepEqual(capForOpenFileLimit(10_620, limits('20000')), { used: 10_620, limit: 20_000 });
    assert.deepEqual(capForOpenFileLimit(10_620, limits('1024')), { used: 768, limit: 1024 }, 'a container\'s 1024 keeps a quarter in reserve');
    assert.deepEqual(capForOpenFileLimit(10_620, limits('8192')), { used: 7936, limit: 8192 }, 'a larger limit keeps 256 in reserve');
    assert.deepEqual(capForOpenFileLimit(10_620, limits('unlimited')), { used: 10_620, limit: undefined });
    assert.deepEqual(capForOpenFileLimit(10_620, ''), { used: 10_620, limit: undefined });
  });
});

describe('rate-limited log line', () => {
  test('a burst of ten thousand refusals writes two lines whose counts add up to the burst', async () => {
    const { lines, log } = captureLog();
    const refused = limitedLog(log, 'refused', 60_000);
    for (let i = 0; i < 10_000; i++) refused.hit({ client: `10.0.0.${i % 250}` });
    refused.close();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(lines.length, 2, 'the first event at once, the rest summarised');
    assert.equal(lines.reduce((sum, line) => sum + Number(line['count']), 0), 10_000);
    assert.equal(refused.total, 10_000);
  });

  test('the events of an interval are reported when it ends, without another event to trigger it', async () => {
    const { lines, log } = captureLog();
    const refused = limitedLog(log, 'refused', 50);
    refused.hit();
    refused.hit();
    refused.hit();
    const deadline = Date.now() + 5_000;
    while (lines.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    refused.close();
    assert.deepEqual(lines.map((line) => line['count']), [1, 2]);
  });
});
