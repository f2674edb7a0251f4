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
import { compileProtoText, type ProtoRoot } from '../../shared/proto-check.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ProtoConf } from '../../shared/schema/proto.ts';
import type { ConfigItem } from '../config/config-state.ts';

export type { ProtoRoot };

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
  const compiled = compileProtoText(id, (protoId) => protos.get(protoId)?.value.content);
  const items = compiled.ids.flatMap((protoId) => {
    const item = protos.get(protoId);
    return item === undefined ? [] : [item];
  });
  return compiled.ok ? { ok: true, proto: { root: compiled.root, items } } : { ok: false, error: compiled.error, items };
}
