/**
 * The consumers of a snapshot, indexed the ways authentication plugins look them up: `key-auth` by key. Built once
 * per change to the consumers (the snapshot keeps the table while the consumers map is the same object), read per
 * call through the snapshot the call pinned, so a consumer added, re-keyed or removed applies to the next call.
 *
 * Two consumers with the same key would make the key name either: the first by name keeps it, the other is logged
 * and cannot authenticate with it (APISIX refuses such a write; here the data plane must also survive what etcd
 * holds).
 */
import type { Logger } from '../../shared/logger.ts';
import type { ConsumerConf } from '../../shared/schema/consumer.ts';
import type { ConfigItem } from '../config/config-state.ts';

export interface Consumer {
  readonly username: string;
}

export class ConsumerTable {
  readonly #byKey = new Map<string, Consumer>();
  readonly size: number;

  constructor(consumers: Iterable<ConfigItem<ConsumerConf>>, log?: Logger) {
    const sorted = [...consumers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const item of sorted) {
      const key = item.value.plugins?.['key-auth']?.key;
      if (key === undefined) continue;
      const holder = this.#byKey.get(key);
      if (holder !== undefined) {
        log?.warn({ consumer: item.id, holder: holder.username }, 'two consumers have the same key-auth key; the first by name keeps it');
        continue;
      }
      this.#byKey.set(key, { username: item.id });
    }
    this.size = sorted.length;
  }

  /** The consumer whose key-auth key is `key`. */
  byKey(key: string): Consumer | undefined {
    return this.#byKey.get(key);
  }
}

export const NO_CONSUMERS = new ConsumerTable([]);
