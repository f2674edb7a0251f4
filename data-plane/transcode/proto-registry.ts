/**
 * The protos of a snapshot, compiled (issue #17: what `grpc-transcode` reads services and messages from): each
 * proto's text parsed into a protobufjs Root together with what it imports (other protos by `"<id>.proto"`, the
 * well-known types protobufjs bundles), every type reference resolved. Compiled once per version: a registry built
 * for a new snapshot keeps the Root of a proto whose text and imports are the same items as before.
 *
 * A proto that cannot be compiled (an import missing from etcd, a type no file defines, a cycle of imports) is left
 * out with one log line per version, and its error kept for whoever names it; the others are unaffected.
 * protobufjs is loaded on first use: a data plane without protos never loads it.
 */
import { describe } from '../../shared/errors.ts';
import { loadProtobuf, type Protobuf } from '../../shared/proto-check.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ProtoConf } from '../../shared/schema/proto.ts';
import type { ConfigItem } from '../config/config-state.ts';

export type ProtoRoot = InstanceType<Protobuf['Root']>;

const WELL_KNOWN_PREFIX = 'google/protobuf/';
/** Imports followed from one proto at most (a bound on a chain or a web of imports). */
const MAX_FILES = 256;

export interface CompiledProto {
  readonly root: ProtoRoot;
  /** The items it was compiled from (itself first, then its imports), by identity: equal lists, equal Root. */
  readonly items: readonly ConfigItem<ProtoConf>[];
}

type Built = { readonly ok: true; readonly proto: CompiledProto } | { readonly ok: false; readonly error: string; readonly items: readonly ConfigItem<ProtoConf>[] };

export class ProtoRegistry {
  readonly #built = new Map<string, Built>();

  constructor(protos: ReadonlyMap<string, ConfigItem<ProtoConf>>, previous?: ProtoRegistry, log?: Logger) {
    for (const id of protos.keys()) {
      const before = previous === undefined ? undefined : previous.#built.get(id);
      const items = before === undefined ? undefined : before.ok ? before.proto.items : before.items;
      if (before !== undefined && items !== undefined && items.every((item) => protos.get(item.id) === item)) {
        this.#built.set(id, before);
        continue;
      }
      const built = compile(id, protos);
      if (!built.ok) log?.error({ key: `protos/${id}`, error: built.error }, 'skipped a proto that cannot be compiled; the rest of the configuration applies');
      this.#built.set(id, built);
    }
  }

  get size(): number {
    return this.#built.size;
  }

  /** The compiled proto `id`, undefined when it is absent or cannot be compiled (see error()). */
  get(id: string): CompiledProto | undefined {
    const built = this.#built.get(id);
    return built?.ok === true ? built.proto : undefined;
  }

  /** Why proto `id` cannot be compiled, undefined when it can (or is absent). */
  error(id: string): string | undefined {
    const built = this.#built.get(id);
    return built?.ok === false ? built.error : undefined;
  }
}

export const NO_PROTOS = new ProtoRegistry(new Map());

function compile(id: string, protos: ReadonlyMap<string, ConfigItem<ProtoConf>>): Built {
  const pb = loadProtobuf();
  const root = new pb.Root();
  const items: ConfigItem<ProtoConf>[] = [];
  const added = new Set<string>();
  const pending = [`${id}.proto`];
  try {
    while (pending.length > 0) {
      const file = pending.shift() as string;
      if (added.has(file)) continue;
      if (added.size >= MAX_FILES) throw new Error(`more than ${String(MAX_FILES)} files imported`);
      added.add(file);
      if (file.startsWith(WELL_KNOWN_PREFIX)) {
        const common = (pb.common as unknown as Record<string, { nested?: Parameters<ProtoRoot['addJSON']>[0] } | undefined>)[file];
        if (common?.nested === undefined) throw new Error(`import "${file}": not a well-known type protobufjs bundles`);
        root.addJSON(common.nested);
        continue;
      }
      const importedId = file.slice(0, -'.proto'.length);
      const item = protos.get(importedId);
      if (item === undefined) throw new Error(`import "${file}": no proto ${importedId}`);
      items.push(item);
      const parsed = pb.parse(item.value.content, root, { keepCase: true });
      for (const next of [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])]) pending.push(next);
    }
    root.resolveAll();
  } catch (err) {
    return { ok: false, error: describe(err), items };
  }
  return { ok: true, proto: { root, items } };
}
