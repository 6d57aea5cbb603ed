import { LRUCache } from "lru-cache";
import type { Router } from "../db/router.ts";
import { findActiveKey, isWellFormedApiKey } from "./api-keys.ts";
import type { Principal } from "./principal.ts";

/**
 * Resolves API keys to principals. Lookups read a replica and, on a miss, the primary, so a key
 * created a moment ago works at once. Answers are cached for `cacheTtlMs`: a revoked key stops
 * working within that bound.
 */
export class Authenticator {
  readonly #router: Router;
  readonly #cache: LRUCache<string, Principal | false>;

  constructor(router: Router, options: { cacheTtlMs: number }) {
    this.#router = router;
    this.#cache = new LRUCache({ max: 10_000, ttl: options.cacheTtlMs });
  }

  /** Whether `key` would be answered from the cache, without a database lookup. */
  isCached(key: string): boolean {
    return this.#cache.has(key);
  }

  async authenticate(key: string): Promise<Principal | undefined> {
    if (!isWellFormedApiKey(key)) return undefined;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached || undefined;
    const onReplica = await this.#router.read({}, (db) => findActiveKey(db, key));
    const principal =
      onReplica.value ?? (await this.#router.read({ primary: true }, (db) => findActiveKey(db, key))).value;
    this.#cache.set(key, principal ?? false);
    return principal;
  }
}
