/**
 * The consumers of a snapshot, indexed the ways authentication plugins look them up: `key-auth` by key, `jwt-auth`
 * by the key its tokens name (with the verification key made once here). Built once
 * per change to the consumers (the snapshot keeps the table while the consumers map is the same object), read per
 * call through the snapshot the call pinned, so a consumer added, re-keyed or removed applies to the next call.
 *
 * Two consumers with the same key would make the key name either: the first by name keeps it, the other is logged
 * and cannot authenticate with it (APISIX refuses such a write; here the data plane must also survive what etcd
 * holds).
 */
import type { Logger } from '../../shared/logger.ts';
import { jwtKeyOf, type JwtKey } from '../../shared/jwt-keys.ts';
import { consumerPolicyPlugins, type ConsumerConf, type ConsumerGroupConf, type JwtAuthConsumerConf } from '../../shared/schema/consumer.ts';
import { describe } from '../../shared/errors.ts';
import type { PluginMetadataConf } from '../../shared/schema/plugin-holders.ts';
import { compilePlugins, type PluginChain } from './pipeline.ts';
import type { RedisStores } from './redis-stores.ts';
import type { ConfigItem } from '../config/config-state.ts';
import type { PluginRequest } from './request.ts';

export interface Consumer {
  readonly username: string;
  /** The consumer's own plugins (beyond credentials), merged over the route's once it is identified (pipeline.ts). */
  readonly plugins?: PluginChain | undefined;
  /** The chains that merging made, by what they were merged with: made once, then reused (pipeline.ts). */
  readonly merged?: WeakMap<object, PluginChain>;
}

/** A consumer's jwt-auth credential, ready to verify with. */
export interface JwtCredential {
  readonly consumer: Consumer;
  readonly key: JwtKey;
  /** Seconds of clock skew allowed on `exp` and `nbf`. */
  readonly graceSeconds: number;
}

export class ConsumerTable {
  readonly #byKey = new Map<string, Consumer>();
  readonly #byJwtKey = new Map<string, JwtCredential>();
  /** Each consumer with the item it was built from: a rebuilt table keeps an unchanged consumer (and its plugins' state). */
  readonly #built = new Map<string, { item: ConfigItem<ConsumerConf>; group: ConfigItem<ConsumerGroupConf> | undefined; consumer: Consumer }>();
  readonly size: number;
  readonly #metadata: ReadonlyMap<string, ConfigItem<PluginMetadataConf>> | undefined;

  /**
   * `previous`: the table this one replaces, whose unchanged consumers are kept as they are; `stores`: where the
   * consumers' plugins with a Redis policy get their client; `groups`: the consumer groups, whose plugins a consumer
   * naming one by `group_id` takes under its own. A consumer whose plugins cannot be built, or whose group is
   * missing, is left out (it cannot authenticate) rather than admitted without them.
   */
  constructor(
    consumers: Iterable<ConfigItem<ConsumerConf>>,
    log?: Logger,
    previous?: ConsumerTable,
    stores?: RedisStores,
    groups?: ReadonlyMap<string, ConfigItem<ConsumerGroupConf>>,
    metadata?: ReadonlyMap<string, ConfigItem<PluginMetadataConf>>,
  ) {
    this.#metadata = metadata;
    // Consumers are kept only if their plugins would compile the same: the same plugin metadata.
    const reusable = previous !== undefined && previous.#metadata === metadata ? previous : undefined;
    const sorted = [...consumers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const item of sorted) {
      const kept = reusable === undefined ? undefined : reusable.#built.get(item.id);
      const groupId = item.value.group_id;
      const group = groupId === undefined ? undefined : groups?.get(String(groupId));
      if (groupId !== undefined && group === undefined) {
        log?.error({ key: `consumers/${item.id}`, group: String(groupId) }, 'skipped a consumer whose consumer group does not exist; the rest of the configuration applies');
        continue;
      }
      let consumer: Consumer;
      if (kept !== undefined && kept.item === item && kept.group === group) consumer = kept.consumer;
      else {
        try {
          const own = consumerPolicyPlugins(item.value.plugins);
          const merged = group === undefined ? own : { ...group.value.plugins, ...own };
          const plugins = compilePlugins(merged, { owner: `consumers/${item.id}`, stores, metadata: (name) => metadata?.get(name)?.value });
          consumer = plugins === undefined ? { username: item.id } : { username: item.id, plugins, merged: new WeakMap() };
        } catch (err) {
          log?.error({ key: `consumers/${item.id}`, modRevision: item.modRevision, error: describe(err) }, 'skipped a consumer whose plugins cannot be built; the rest of the configuration applies');
          continue;
        }
      }
      this.#built.set(item.id, { item, group, consumer });
      const key = item.value.plugins?.['key-auth']?.key;
      if (key !== undefined) {
        const holder = this.#byKey.get(key);
        if (holder === undefined) this.#byKey.set(key, consumer);
        else log?.warn({ consumer: item.id, holder: holder.username }, 'two consumers have the same key-auth key; the first by name keeps it');
      }
      const jwt = item.value.plugins?.['jwt-auth'];
      if (jwt !== undefined) this.#addJwt(consumer, jwt, log);
    }
    this.size = sorted.length;
  }

  #addJwt(consumer: Consumer, conf: JwtAuthConsumerConf, log: Logger | undefined): void {
    const holder = this.#byJwtKey.get(conf.key);
    if (holder !== undefined) {
      log?.warn({ consumer: consumer.username, holder: holder.consumer.username }, 'two consumers have the same jwt-auth key; the first by name keeps it');
      return;
    }
    const key = jwtKeyOf(conf);
    if (typeof key === 'string') {
      log?.warn({ consumer: consumer.username, problem: key }, 'a consumer\'s jwt-auth credential cannot verify tokens; it is left out');
      return;
    }
    this.#byJwtKey.set(conf.key, { consumer, key, graceSeconds: conf.lifetime_grace_period ?? 0 });
  }

  /** The jwt-auth credential whose `key` is `key` (the token's key claim). */
  byJwtKey(key: string): JwtCredential | undefined {
    return this.#byJwtKey.get(key);
  }

  /** Every consumer's plugin chain, for the snapshot's stores in use. */
  chains(): (PluginChain | undefined)[] {
    return [...this.#built.values()].map((b) => b.consumer.plugins);
  }

  /** The consumer whose key-auth key is `key`. */
  byKey(key: string): Consumer | undefined {
    return this.#byKey.get(key);
  }
}

export const NO_CONSUMERS = new ConsumerTable([]);

/** APISIX's header for the consumer's name (lower case: HTTP/2 field names are). */
export const CONSUMER_HEADER = 'x-consumer-username';

/** What an authentication plugin does once it identified the caller: the consumer for the plugins after it, its
 * name upstream (`x-consumer-username`, replacing a client's own), and the credential hidden if asked. */
export function admitConsumer(request: PluginRequest, consumer: Consumer, credentialHeader: string, hide: boolean): void {
  request.consumer = consumer;
  request.setUpstreamHeader(CONSUMER_HEADER, consumer.username);
  if (hide) request.removeUpstreamHeader(credentialHeader);
}
