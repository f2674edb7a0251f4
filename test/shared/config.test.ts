import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_ALLOW_ADMIN, DOCUMENTED_ADMIN_KEY, DOCUMENTED_KEYRING, loadConfig, parseConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';

describe('config', () => {
  test('the shipped conf/config.yaml gives the seed document defaults', () => {
    const config = loadConfig({});
    assert.deepEqual(config.nodeListen, [{ ip: '0.0.0.0', port: 9081 }]);
    assert.deepEqual(config.ssl.listen, [{ ip: '0.0.0.0', port: 9443 }]);
    assert.equal(config.admin.ip, '127.0.0.1');
    assert.equal(config.admin.port, 9080);
    assert.equal(config.admin.keys[0]?.key, DOCUMENTED_ADMIN_KEY);
    assert.deepEqual(config.etcd.hosts, ['http://127.0.0.1:2379']);
    assert.equal(config.etcd.prefix, '/apisix');
  });

  test("the seed's 2.x node_listen serves the enable_http2 port as h2c and skips the HTTP/1.1 one", () => {
    const config = parseConfig(`
apisix:
    node_listen:
        - port: 9080
          enable_http2: false
        - port: 9081
          enable_http2: true
`);
    assert.deepEqual(config.nodeListen, [{ ip: '0.0.0.0', port: 9081 }]);
  });

  test('3.x forms: a bare port list follows the global enable_http2', () => {
    assert.deepEqual(parseConfig('apisix: { node_listen: [9100, 9101] }').nodeListen, [
      { ip: '0.0.0.0', port: 9100 },
      { ip: '0.0.0.0', port: 9101 },
    ]);
    assert.deepEqual(parseConfig('apisix: { enable_http2: false, node_listen: [9100] }').nodeListen, []);
  });

  test('${{VAR}} and ${{VAR:=default}} are substituted, comment lines are not', () => {
    const config = parseConfig(
      `# \${{NOT_SET_ANYWHERE}} in a comment is fine
deployment:
  etcd:
    host: ["\${{ETCD_URL}}"]
    prefix: \${{PREFIX:=/custom}}
`,
      { ETCD_URL: 'http://10.1.2.3:2379' },
    );
    assert.deepEqual(config.etcd.hosts, ['http://10.1.2.3:2379']);
    assert.equal(config.etcd.prefix, '/custom');
    assert.throws(() => parseConfig('log: { level: "${{MISSING}}" }'), ConfigError);
  });

  test('GATEWAY_* variables override single values', () => {
    const config = parseConfig('', {
      GATEWAY_ETCD_HOSTS: 'http://a:1, http://b:2',
      GATEWAY_ETCD_PREFIX: 'gw/',
      GATEWAY_ADMIN_LISTEN: '0.0.0.0:9180',
      GATEWAY_ADMIN_KEY: 'k',
      GATEWAY_H2C_LISTEN: '127.0.0.1:1,[::1]:2',
      GATEWAY_TLS_LISTEN: '3',
      LOG_LEVEL: 'warn',
    });
    assert.deepEqual(config.etcd.hosts, ['http://a:1', 'http://b:2']);
    assert.equal(config.etcd.prefix, '/gw');
    assert.deepEqual([config.admin.ip, config.admin.port], ['0.0.0.0', 9180]);
    assert.deepEqual(config.admin.keys, [{ name: 'admin', key: 'k', role: 'admin' }]);
    assert.deepEqual(config.nodeListen, [
      { ip: '127.0.0.1', port: 1 },
      { ip: '::1', port: 2 },
    ]);
    assert.deepEqual(config.ssl.listen, [{ ip: '0.0.0.0', port: 3 }]);
    assert.equal(config.log.level, 'warn');
  });

  test('bad values are refused with the path of the setting', () => {
    assert.throws(() => parseConfig('apisix: { node_listen: [{ port: 70000 }] }'), /apisix\.node_listen\[0\]\.port: expected a whole number from 0 to 65535, got 70000/);
    assert.throws(() => parseConfig('deployment: { admin: { admin_key: [{ key: k, role: root }] } }'), /admin_key\[0\]\.role: expected one of admin, viewer, got "root"/);
    assert.throws(() => parseConfig('apisix: ['), /not valid YAML/);
  });
  test('the admin API answers loopback only and keys are encrypted with APISIX\'s keyring by default', () => {
    const config = loadConfig({});
    assert.deepEqual(config.admin.allowAdmin, [...DEFAULT_ALLOW_ADMIN]);
    assert.deepEqual(config.dataEncryption.keyring, [...DOCUMENTED_KEYRING]);
    assert.equal(config.etcd.tls, undefined);
  });

  test('allow_admin takes CIDR blocks and single addresses, and refuses anything else', () => {
    const config = parseConfig('deployment: { admin: { allow_admin: ["10.0.0.0/8", "192.168.1.7", "fd00::/8"] } }');
    assert.deepEqual(config.admin.allowAdmin, ['10.0.0.0/8', '192.168.1.7/32', 'fd00::/8']);
    assert.throws(() => parseConfig('deployment: { admin: { allow_admin: ["10.0.0.0/33"] } }'), /allow_admin\[0\].*prefix length/);
    assert.throws(() => parseConfig('deployment: { admin: { allow_admin: ["example.com"] } }'), /not an IP address/);
    assert.throws(() => parseConfig('deployment: { admin: { allow_admin: [] } }'), /at least one/);
  });

  test('data_encryption.keyring: a string or a list of 16/32-byte entries; ~ or [] stores keys in clear', () => {
    assert.deepEqual(parseConfig('apisix: { data_encryption: { keyring: abcdefghijklmnop } }').dataEncryption.keyring, ['abcdefghijklmnop']);
    assert.deepEqual(parseConfig('apisix: { data_encryption: { keyring: ~ } }').dataEncryption.keyring, []);
    assert.deepEqual(parseConfig('apisix: { data_encryption: { keyring: [] } }').dataEncryption.keyring, []);
    assert.throws(() => parseConfig('apisix: { data_encryption: { keyring: [tooshort] } }'), /keyring\[0\]: must be 16 bytes/);
  });

  test('etcd TLS and password auth come from deployment.etcd, the CA from apisix.ssl.ssl_trusted_certificate', () => {
    const config = parseConfig(`
apisix: { ssl: { ssl_trusted_certificate: /etc/ca.pem } }
deployment:
  etcd: { host: ["https://etcd:2379"], user: root, password: secret, tls: { cert: /c.pem, key: /k.pem, sni: etcd.local } }
`);
    assert.deepEqual(config.etcd.tls, { caFile: '/etc/ca.pem', certFile: '/c.pem', keyFile: '/k.pem', sni: 'etcd.local' });
    assert.deepEqual([config.etcd.username, config.etcd.password], ['root', 'secret']);
    assert.throws(() => parseConfig('deployment: { etcd: { tls: { verify: false } } }'), /verify: false is not supported/);
    assert.throws(() => parseConfig('deployment: { etcd: { tls: { cert: /c.pem } } }'), /cert and key must be set together/);
  });

  test('GATEWAY_* variables override the security settings', () => {
    const config = parseConfig('', {
      GATEWAY_ADMIN_ALLOW: '10.1.0.0/16, ::1',
      GATEWAY_ADMIN_VIEWER_KEY: 'v',
      GATEWAY_ETCD_USER: 'u',
      GATEWAY_ETCD_PASSWORD: 'p',
      GATEWAY_ETCD_TLS_CA: '/ca.pem',
      GATEWAY_DATA_ENCRYPTION_KEYRING: 'abcdefghijklmnop,0123456789abcdef',
    });
    assert.deepEqual(config.admin.allowAdmin, ['10.1.0.0/16', '::1/128']);
    assert.deepEqual(config.admin.keys.map((k) => k.role), ['admin', 'viewer']);
    assert.deepEqual([config.etcd.username, config.etcd.password, config.etcd.tls?.caFile], ['u', 'p', '/ca.pem']);
    assert.deepEqual(config.dataEncryption.keyring, ['abcdefghijklmnop', '0123456789abcdef']);
  });

  test('the status port is on at 127.0.0.1:7085 in conf/config.yaml and off when apisix.status is absent or false', () => {
    assert.deepEqual(loadConfig({}).status, { ip: '127.0.0.1', port: 7085 });
    assert.equal(parseConfig('').status, undefined);
    assert.equal(parseConfig('apisix: { status: false }').status, undefined);
    assert.equal(parseConfig('apisix: { status: ~ }').status, undefined);
    assert.deepEqual(parseConfig('apisix: { status: {} }').status, { ip: '127.0.0.1', port: 7085 });
    assert.deepEqual(parseConfig('apisix: { status: { ip: 0.0.0.0, port: 0 } }').status, { ip: '0.0.0.0', port: 0 });
    assert.throws(() => parseConfig('apisix: { status: { port: 70000 } }'), /apisix\.status\.port: expected a whole number from 0 to 65535, got 70000/);
    assert.throws(() => parseConfig('apisix: { status: { port: 9081 } }'), /apisix\.status\.port: 9081 is also a gRPC listener's port/);
  });

  test('GATEWAY_STATUS_LISTEN sets the status address, a bare port on loopback, or turns it off', () => {
    assert.deepEqual(parseConfig('', { GATEWAY_STATUS_LISTEN: '127.0.0.1:0' }).status, { ip: '127.0.0.1', port: 0 });
    assert.deepEqual(parseConfig('', { GATEWAY_STATUS_LISTEN: '0.0.0.0:7086' }).status, { ip: '0.0.0.0', port: 7086 });
    assert.deepEqual(parseConfig('', { GATEWAY_STATUS_LISTEN: '7086' }).status, { ip: '127.0.0.1', port: 7086 });
    assert.equal(loadConfig({ GATEWAY_STATUS_LISTEN: 'off' }).status, undefined);
    assert.throws(() => parseConfig('', { GATEWAY_STATUS_LISTEN: 'localhost' }), /GATEWAY_STATUS_LISTEN: expected ip:port/);
  });
  test('data-plane processes: worker_processes, worker_shutdown_timeout, config_provider, snapshot_cache', () => {
    const defaults = parseConfig('').dataPlane;
    assert.equal(defaults.workerProcesses, 1);
    assert.equal(defaults.shutdownTimeoutMs, 10_000);
    assert.equal(defaults.configProvider, 'etcd');
    assert.equal(defaults.snapshotCache, undefined);
    assert.match(defaults.standaloneFile, /conf\/apisix\.yaml$/);
    const shipped = loadConfig({}).dataPlane;
    assert.equal(shipped.workerProcesses, availableParallelism());
    assert.equal(shipped.snapshotCache, undefined);
    const file = parseConfig(`
nginx_config: { worker_processes: 3, worker_shutdown_timeout: 2m }
deployment:
  role_data_plane: { config_provider: yaml, config_file: /etc/gw/apisix.yaml }
  etcd: { snapshot_cache: /var/cache/gw.json }
`).dataPlane;
    assert.deepEqual(file, { workerProcesses: 3, shutdownTimeoutMs: 120_000, configProvider: 'yaml', standaloneFile: '/etc/gw/apisix.yaml', snapshotCache: '/var/cache/gw.json', standaloneEnv: {} });
    const env = parseConfig('', {
      GATEWAY_WORKER_PROCESSES: '4',
      GATEWAY_SHUTDOWN_TIMEOUT: '2.5',
      GATEWAY_CONFIG_PROVIDER: 'yaml',
      GATEWAY_STANDALONE_FILE: '/tmp/a.yaml',
      GATEWAY_SNAPSHOT_CACHE: '/tmp/c.json',
    }).dataPlane;
    const { standaloneEnv, ...rest } = env;
    assert.deepEqual(rest, { workerProcesses: 4, shutdownTimeoutMs: 2_500, configProvider: 'yaml', standaloneFile: '/tmp/a.yaml', snapshotCache: '/tmp/c.json' });
    assert.equal(standaloneEnv['GATEWAY_STANDALONE_FILE'], '/tmp/a.yaml', 'the standalone file is substituted from the same environment');
    assert.equal(parseConfig('', { GATEWAY_WORKER_PROCESSES: 'auto' }).dataPlane.workerProcesses, availableParallelism());
    assert.equal(parseConfig('deployment: { etcd: { snapshot_cache: /x.json } }', { GATEWAY_SNAPSHOT_CACHE: 'off' }).dataPlane.snapshotCache, undefined);
    assert.throws(() => parseConfig('nginx_config: { worker_processes: 0 }'), /nginx_config\.worker_processes: expected auto or a whole number/);
    assert.throws(() => parseConfig('', { GATEWAY_WORKER_PROCESSES: 'many' }), /GATEWAY_WORKER_PROCESSES: expected auto/);
    assert.throws(() => parseConfig('deployment: { role_data_plane: { config_provider: xds } }'), /config_provider: expected one of etcd, yaml, got "xds"/);
    assert.throws(() => parseConfig('nginx_config: { worker_shutdown_timeout: soon }'), /worker_shutdown_timeout: expected seconds/);
  });
});

describe('config schema (shared/schema/config-file.ts)', () => {
  const message = (run: () => unknown): string => {
    try {
      run();
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.message;
    }
    return 'accepted';
  };

  test('a wrong type at a nested key names the key path and what the key takes', () => {
    assert.match(message(() => parseConfig('deployment: { etcd: { tls: { cert: 5, key: /k.pem } } }')), /^config: deployment\.etcd\.tls\.cert: expected a string, got 5$/);
    assert.match(message(() => parseConfig('nginx_config: { http: { keepalive_timeout: [60] } }')), /nginx_config\.http\.keepalive_timeout: expected seconds or a duration such as 10s, 500ms or 2m, got a list of 1/);
    assert.match(message(() => parseConfig('apisix: { ssl: { enable: "yes" } }')), /apisix\.ssl\.enable: expected true or false, got "yes"/);
    assert.match(message(() => parseConfig('deployment: { admin: { admin_key: [{ name: a }] } }')), /deployment\.admin\.admin_key\[0\]\.key: expected a non-empty string, got nothing/);
    assert.match(message(() => parseConfig('apisix: [9081]')), /^config: apisix: expected a mapping, got a list of 1$/);
    // A secret's value is never repeated, only its type.
    const secret = message(() => parseConfig('deployment: { etcd: { password: 123456 } }'));
    assert.match(secret, /deployment\.etcd\.password: expected a string, got a number/);
    assert.doesNotMatch(secret, /123456/);
  });

  test('an out-of-range value names the key path and the range', () => {
    assert.match(message(() => parseConfig('apisix: { node_listen: [9081, { port: 70000 }] }')), /apisix\.node_listen\[1\]\.port: expected a whole number from 0 to 65535, got 70000/);
    assert.match(message(() => parseConfig('nginx_config: { worker_processes: 300 }')), /nginx_config\.worker_processes: expected auto or a whole number from 1 to 256, got 300/);
    assert.match(message(() => parseConfig('deployment: { etcd: { timeout: 0 } }')), /deployment\.etcd\.timeout: expected a number above 0 up to 86400, got 0/);
    assert.match(message(() => parseConfig('plugin_attr: { prometheus: { default_buckets: [] } }')), /plugin_attr\.prometheus\.default_buckets: expected a list of 1 to 64 numbers above 0, got an empty list/);
  });

  test('loadConfig names the file in front of the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-config-'));
    try {
      const file = join(dir, 'config.yaml');
      writeFileSync(file, 'apisix:\n  node_listen:\n    - port: 70000\n');
      assert.equal(message(() => loadConfig({}, file)), `${file}: apisix.node_listen[0].port: expected a whole number from 0 to 65535, got 70000`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('keys of an APISIX config.yaml this gateway does not implement are accepted as before, and listed', () => {
    const ours = `
apisix:
  node_listen: [9100]
deployment:
  role_data_plane: { config_provider: etcd }
  etcd: { host: ["http://10.0.0.1:2379"] }
`;
    const copied = `
apisix:
  node_listen: [9100]
  enable_admin: true
  proxy_cache: { cache_ttl: 10s, zones: [{ name: disk_cache_one }] }
  ssl: { ssl_session_tickets: false }
nginx_config:
  error_log: logs/error.log
  http2: { max_concurent_streams: 64 }
plugins: [prometheus, limit-count]
plugin_attr:
  log-rotate: { interval: 3600 }
deployment:
  role: data_plane
  role_data_plane: { config_provider: etcd }
  etcd: { host: ["http://10.0.0.1:2379"], watch_timeout: 50 }
`;
    const { ignoredKeys, ...config } = parseConfig(copied);
    const { ignoredKeys: none, ...expected } = parseConfig(ours);
    assert.deepEqual(config, expected);
    assert.deepEqual(none, []);
    assert.deepEqual(ignoredKeys, [
      'apisix.enable_admin',
      'apisix.proxy_cache',
      'apisix.ssl.ssl_session_tickets',
      'nginx_config.error_log',
      'nginx_config.http2.max_concurent_streams',
      'plugins',
      'plugin_attr.log-rotate',
      'deployment.role',
      'deployment.etcd.watch_timeout',
    ]);
    assert.deepEqual(loadConfig({}).ignoredKeys, [], 'the shipped conf/config.yaml uses known keys only');
  });

  test('values from the environment are validated like the keys they set', () => {
    // ${{VAR}} is substituted before validation: the error names the key.
    assert.match(message(() => parseConfig('apisix: { node_listen: [{ port: ${{H2C_PORT}} }] }', { H2C_PORT: 'abc' })), /apisix\.node_listen\[0\]\.port: expected a whole number from 0 to 65535, got "abc"/);
    assert.deepEqual(parseConfig('apisix: { node_listen: [{ port: ${{H2C_PORT}} }] }', { H2C_PORT: '9200' }).nodeListen, [{ ip: '0.0.0.0', port: 9200 }]);
    // A GATEWAY_* override is checked with the schema of the key it overrides, and names the variable.
    assert.equal(message(() => parseConfig('', { GATEWAY_WORKER_PROCESSES: '0' })), 'GATEWAY_WORKER_PROCESSES: expected auto or a whole number from 1 to 256, got 0');
    assert.equal(message(() => parseConfig('', { GATEWAY_CONFIG_PROVIDER: 'xds' })), 'GATEWAY_CONFIG_PROVIDER: expected one of etcd, yaml, got "xds"');
    assert.equal(message(() => parseConfig('', { GATEWAY_SHUTDOWN_TIMEOUT: '-1' })), 'GATEWAY_SHUTDOWN_TIMEOUT: expected seconds or a duration such as 10s, 500ms or 2m, got -1');
    assert.equal(message(() => parseConfig('', { LOG_LEVEL: 'loud' })), 'LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"');
    assert.equal(message(() => parseConfig('', { GATEWAY_HTTP2_ENGINE: 'h2o' })), 'GATEWAY_HTTP2_ENGINE: expected one of native, node, got "h2o"');
    assert.match(message(() => parseConfig('', { GATEWAY_H2C_LISTEN: '127.0.0.1:70000' })), /GATEWAY_H2C_LISTEN: invalid port 70000/);
    assert.match(message(() => parseConfig('', { GATEWAY_ADMIN_ALLOW: '10.0.0.0/33' })), /GATEWAY_ADMIN_ALLOW\[0\].*prefix length/);
    // Valid overrides still apply over the file's values.
    const config = parseConfig('nginx_config: { worker_processes: 2, worker_shutdown_timeout: 5s }', { GATEWAY_WORKER_PROCESSES: '3', GATEWAY_SHUTDOWN_TIMEOUT: '500ms', LOG_LEVEL: 'debug' });
    assert.deepEqual([config.dataPlane.workerProcesses, config.dataPlane.shutdownTimeoutMs, config.log.level], [3, 500, 'debug']);
  });
});

describe('the configuration a data-plane primary sends its workers', () => {
  /** `value` without its undefined properties: what JSON keeps of it. */
  function definedOnly(value: unknown): unknown {
    if (Array.isArray(value)) return value.map(definedOnly);
    if (typeof value !== 'object' || value === null) return value;
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, definedOnly(v)]));
  }

  test('crosses the IPC channel (JSON) unchanged, for the shipped config.yaml and one with every section set', () => {
    const shipped = loadConfig({});
    assert.deepEqual(JSON.parse(JSON.stringify(shipped)), definedOnly(shipped));
    const full = parseConfig(`
apisix:
  node_listen: [9081]
  ssl: { enable: true, listen: [{ port: 9443 }], fallback_sni: example.com }
  status: { ip: 127.0.0.1, port: 7085 }
nginx_config: { worker_processes: 2, worker_shutdown_timeout: 5s }
deployment:
  etcd: { host: ["http://127.0.0.1:2379"], prefix: /gw, timeout: 3, user: u, password: p }
`);
    assert.deepEqual(JSON.parse(JSON.stringify(full)), definedOnly(full));
  });
});
