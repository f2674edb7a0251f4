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
import type { ConsumerConf, JwtAuthConsumerConf } from '../../shared/schema/consumer.ts';
import type { ConfigItem } from '../config/config-state.ts';
import type { PluginRequest } from './request.ts';

export interface Consumer {
  readonly username: string;
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
  readonly size: number;

  constructor(consumers: Iterable<ConfigItem<ConsumerConf>>, log?: Logger) {
    const sorted = [...consumers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const item of sorted) {
      const consumer: Consumer = { username: item.id };
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
