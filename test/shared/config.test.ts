import { availableParallelism } from 'node:os';
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
    assert.throws(() => parseConfig('apisix: { node_listen: [{ port: 70000 }] }'), /apisix\.node_listen\[0\]\.port: invalid port 70000/);
    assert.throws(() => parseConfig('deployment: { admin: { admin_key: [{ key: k, role: root }] } }'), /role must be admin or viewer/);
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
    assert.throws(() => parseConfig('apisix: { status: { port: 70000 } }'), /apisix\.status\.port: invalid port 70000/);
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
    assert.deepEqual(file, { workerProcesses: 3, shutdownTimeoutMs: 120_000, configProvider: 'yaml', standaloneFile: '/etc/gw/apisix.yaml', snapshotCache: '/var/cache/gw.json', standaloneEnv: {}, worker: undefined });
    // A worker process learns its id and the primary's certificate from the environment of its fork.
    assert.deepEqual(parseConfig('', { GATEWAY_WORKER_ID: '2', GATEWAY_WORKER_DEFAULT_CERT: '{"cert":"c","key":"k"}' }).dataPlane.worker, { id: 2, defaultCertJson: '{"cert":"c","key":"k"}' });
    const env = parseConfig('', {
      GATEWAY_WORKER_PROCESSES: '4',
      GATEWAY_SHUTDOWN_TIMEOUT: '2.5',
      GATEWAY_CONFIG_PROVIDER: 'yaml',
      GATEWAY_STANDALONE_FILE: '/tmp/a.yaml',
      GATEWAY_SNAPSHOT_CACHE: '/tmp/c.json',
    }).dataPlane;
    const { standaloneEnv, ...rest } = env;
    assert.deepEqual(rest, { workerProcesses: 4, shutdownTimeoutMs: 2_500, configProvider: 'yaml', standaloneFile: '/tmp/a.yaml', snapshotCache: '/tmp/c.json', worker: undefined });
    assert.equal(standaloneEnv['GATEWAY_STANDALONE_FILE'], '/tmp/a.yaml', 'the standalone file is substituted from the same environment');
    assert.equal(parseConfig('', { GATEWAY_WORKER_PROCESSES: 'auto' }).dataPlane.workerProcesses, availableParallelism());
    assert.equal(parseConfig('deployment: { etcd: { snapshot_cache: /x.json } }', { GATEWAY_SNAPSHOT_CACHE: 'off' }).dataPlane.snapshotCache, undefined);
    assert.throws(() => parseConfig('nginx_config: { worker_processes: 0 }'), /nginx_config\.worker_processes: expected auto or a whole number/);
    assert.throws(() => parseConfig('', { GATEWAY_WORKER_PROCESSES: 'many' }), /GATEWAY_WORKER_PROCESSES: expected auto/);
    assert.throws(() => parseConfig('deployment: { role_data_plane: { config_provider: xds } }'), /config_provider: expected etcd or yaml/);
    assert.throws(() => parseConfig('nginx_config: { worker_shutdown_timeout: soon }'), /worker_shutdown_timeout: expected seconds/);
  });
});
