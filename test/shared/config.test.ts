import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DOCUMENTED_ADMIN_KEY, loadConfig, parseConfig } from '../../shared/config.ts';
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
});
