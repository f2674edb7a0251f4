// ESLint: typescript-eslint's strictTypeChecked for all TypeScript, plus the design's dependency directions, each as
// an import rule with the reason in its message. `npm run lint`; CI runs it in `npm test`.
// test/lint/boundaries.test.ts proves that every boundary rule below reports what it forbids.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** The directories tsconfig.json includes; all of them are linted with type information. */
const TYPESCRIPT = ['{control-plane,data-plane,shared,scripts,examples,bench,test}/**/*.ts'];

/**
 * A module a directory must not import. `regex` is matched against the import's source text, relative paths included;
 * `typesAllowed` lets `import type` through (it is erased before Node runs the file); `importNames` forbids only those.
 * @typedef {{ regex: string, message: string, typesAllowed?: boolean, importNames?: string[] }} Forbidden
 */

/** @type {Record<string, Forbidden>} */
const FORBIDDEN = {
  planesFromShared: {
    regex: String.raw`(^|/)(control|data)-plane/`,
    message: 'shared/ is used by both planes and imports neither: move what both need into shared/.',
  },
  dataPlane: {
    regex: String.raw`(^|/)data-plane/`,
    message: 'the control plane never imports the data plane: they meet only through etcd and shared/.',
  },
  controlPlane: {
    regex: String.raw`(^|/)control-plane/`,
    message: 'the data plane never imports the control plane: they meet only through etcd and shared/.',
  },
  etcd3: {
    regex: '^etcd3(/|$)',
    message: 'etcd3 is loaded only by the modules that own the etcd connection: control-plane/store/ and data-plane/config/etcd-source.ts.',
  },
  fastify: {
    regex: '^(fastify|@fastify/)',
    message: 'fastify serves the Admin API: only control-plane/ imports it.',
  },
  http2Values: {
    regex: '^(node:)?http2$',
    typesAllowed: true,
    message:
      'node:http2 values are used only by its engine adapter (data-plane/listeners.ts, data-plane/upstream/pool.ts): import types with `import type`, and take HTTP/2 codes from data-plane/http2/frame.ts.',
  },
  http2: {
    regex: '^(node:)?http2$',
    message: 'node:http2 belongs to the data plane\'s engine adapter (data-plane/listeners.ts, data-plane/upstream/pool.ts).',
  },
  processEnv: {
    regex: '^(node:)?process$',
    importNames: ['env'],
    message: 'the environment is read only in shared/config.ts: take the value from its GatewayConfig.',
  },
};

const ENV_MESSAGE = FORBIDDEN.processEnv.message;

/**
 * The rules that keep one part of the tree from importing `forbidden`: `no-restricted-imports` for `import` and
 * `export … from`, `no-restricted-syntax` for `import()`, whose source must then be a string literal.
 * @param {string} name
 * @param {string[]} files
 * @param {string[]} ignores
 * @param {Forbidden[]} forbidden
 * @returns {import('eslint').Linter.Config}
 */
function boundary(name, files, ignores, forbidden) {
  const patterns = forbidden.map(({ regex, message, typesAllowed, importNames }) => ({
    regex,
    message,
    ...(typesAllowed === true ? { allowTypeImports: true } : {}),
    ...(importNames !== undefined ? { importNames } : {}),
  }));
  const dynamic = forbidden
    .filter(({ importNames }) => importNames === undefined)
    .map(({ regex, message }) => ({ selector: `ImportExpression[source.value=/${regex.replaceAll('/', String.raw`\/`)}/]`, message }));
  return {
    name: `boundaries/${name}`,
    files,
    ignores,
    rules: {
      'no-restricted-imports': ['error', { patterns }],
      'no-restricted-syntax': [
        'error',
        ...dynamic,
        { selector: 'ImportExpression:not([source.type="Literal"])', message: 'import() takes a string literal here, so that the import rules can check it.' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: ENV_MESSAGE },
        { object: 'globalThis', property: 'process', message: 'use `process` directly, so that the rule on process.env can see it.' },
      ],
    },
  };
}

const { planesFromShared, dataPlane, controlPlane, etcd3, fastify, http2Values, http2, processEnv } = FORBIDDEN;
const ETCD_OWNERS_CP = ['control-plane/store/**'];
const ETCD_OWNER_DP = 'data-plane/config/etcd-source.ts';
const HTTP2_ADAPTER = ['data-plane/listeners.ts', 'data-plane/upstream/pool.ts'];

/**
 * The dependency directions. A later block's rule replaces an earlier one's for the same file, so every file matches
 * exactly one boundary() block, and that block lists everything its files must not import.
 */
const boundaries = [
  boundary('shared', ['shared/**/*.ts'], [], [planesFromShared, etcd3, fastify, http2, processEnv]),
  boundary('control-plane', ['control-plane/**/*.ts'], ETCD_OWNERS_CP, [dataPlane, etcd3, http2, processEnv]),
  boundary('control-plane-store', ETCD_OWNERS_CP.map((dir) => `${dir}/*.ts`), [], [dataPlane, http2, processEnv]),
  boundary('data-plane', ['data-plane/**/*.ts'], [ETCD_OWNER_DP, ...HTTP2_ADAPTER], [controlPlane, etcd3, fastify, http2Values, processEnv]),
  boundary('data-plane-etcd-source', [ETCD_OWNER_DP], [], [controlPlane, fastify, http2Values, processEnv]),
  boundary('data-plane-http2-adapter', HTTP2_ADAPTER, [], [controlPlane, etcd3, fastify, processEnv]),
  // shared/config.ts is the one module that reads the environment.
  { name: 'boundaries/config-reads-env', files: ['shared/config.ts'], rules: { 'no-restricted-properties': 'off' } },
];

export default defineConfig(
  // What .gitignore leaves out: dependencies, build output (dist/: tsc's JavaScript), run data and bench results.
  { ignores: ['node_modules/', 'dist/', 'data/', 'bench/results/', 'bench/.build/'] },
  {
    name: 'typescript',
    files: TYPESCRIPT,
    extends: [tseslint.configs.strictTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Numbers (counts, ports, codes, byte sizes) are interpolated into messages everywhere and always print
      // meaningfully (1,031 of the rule's 1,082 findings); undefined, null, booleans and objects still need String().
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowAny: false, allowBoolean: false, allowNever: false, allowNullish: false, allowNumber: true, allowRegExp: false },
      ],
      // `() => resolve()` callbacks and `return this.fail(…)` early exits from void functions are the house style
      // (the HTTP/2 state machine uses the latter on every error path): neither uses the void value (434 findings).
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true, ignoreVoidReturningFunctions: true }],
      // An `async` function without `await` is how this code meets a contract that wants a promise: fastify's async
      // hooks, plugins and handlers (without `async` fastify would wait for a `done` callback), ResourceStore.close(),
      // the write lanes' tasks in tests. 15 findings, none of them a forgotten await (no-floating-promises and
      // no-misused-promises still check the callers).
      '@typescript-eslint/require-await': 'off',
      // The deleted keys are fields of JSON documents (RFC 7396 merge patch and sub-path writes in the Admin API,
      // encrypted fields of a stored resource) and of a header object node:http takes: the object is the format, not a
      // dictionary a Map could replace. 5 findings.
      '@typescript-eslint/no-dynamic-delete': 'off',
      // A leading underscore marks a parameter an override or an interface implementation deliberately ignores
      // (the HTTP/2 connection's hooks, the balancers' begin/end): 26 such parameters. And `{ omitted, ...rest }`
      // is how a test drops fields before a comparison (2 findings).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // node:test's describe/it/test return promises the runner itself awaits (888 findings, all in test/).
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] },
      ],
    },
  },
  ...boundaries,
);
