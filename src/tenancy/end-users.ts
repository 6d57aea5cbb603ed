import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";
import { PrivateAddressError, publicOnlyFetch } from "./public-fetch.ts";
import { LRUCache } from "lru-cache";
import type { Config } from "../config.ts";
import type { Router } from "../db/router.ts";
import { AppError, UnavailableError } from "../errors.ts";
import type { ConsistencyToken } from "../db/consistency-token.ts";
import {
  deleteIdentityProvider,
  findIdentityProvider,
  type IdentityProvider,
  saveIdentityProvider,
} from "./identity-providers.ts";
import { PRINCIPAL_PATTERN } from "./principal.ts";

/** Signed tokens only, with public-key algorithms: `none` and shared secrets are refused. */
/** How old a provider read may be to stand in while the primary is unreachable (a failover takes seconds). */
const STALE_PROVIDER_MS = 2 * 60_000;
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

export interface EndUser {
  readonly id: string;
  readonly groups: readonly string[];
}

/**
 * Verifies end users' tokens against their tenant's identity provider (jose): signature, expiry,
 * issuer and audience; the user id and groups from the provider's claims. Providers are cached for
 * `cacheTtlMs` (a change is seen within that bound); remote key sets are fetched again for a key id
 * not seen yet, at most every `jwksCooldownMs` (key rotation).
 */
export class EndUsers {
  readonly #router: Router;
  readonly #providers: LRUCache<string, { provider: IdentityProvider | null; readAt: number }>;
  readonly #keySets = new LRUCache<string, JWTVerifyGetKey>({ max: 1_000 });
  readonly #options: Config["endUsers"];
  /** Key sets are fetched only from public addresses (a tenant's URL must not reach inside). */
  readonly #fetch: ReturnType<typeof publicOnlyFetch>;

  constructor(router: Router, options: Config["endUsers"] & { cacheTtlMs: number }) {
    this.#router = router;
    this.#options = options;
    this.#fetch = publicOnlyFetch(options.allowLoopbackJwks);
    // Expired entries are kept (not returned) so that one can stand in while the primary is away.
    this.#providers = new LRUCache({ max: 10_000, ttl: options.cacheTtlMs, noDeleteOnStaleGet: true });
  }

  async providerOf(tenantId: string): Promise<IdentityProvider | null> {
    const cached = this.#providers.get(tenantId);
    if (cached) return cached.provider;
    // From the primary: a provider just replaced or removed (a compromised key) is not read back stale.
    // While the primary is unreachable (a failover) nobody can change it, so the last one read serves
    // — if read recently: a change committed just before the outage is seen within the bound.
    try {
      const { value } = await this.#router.read({ tenantId, primary: true }, (db) =>
        findIdentityProvider(db, tenantId),
      );
      this.#providers.set(tenantId, { provider: value, readAt: Date.now() });
      return value;
    } catch (error) {
      const last = error instanceof UnavailableError ? this.#providers.get(tenantId, { allowStale: true }) : undefined;
      if (last && Date.now() - last.readAt <= STALE_PROVIDER_MS) return last.provider;
      throw error;
    }
  }

  /** Registers (or replaces) the tenant's identity provider; this process sees it at once, others within the cache's bound. */
  async register(tenantId: string, provider: IdentityProvider): Promise<ConsistencyToken> {
    const { token } = await this.#router.write({ tenantId }, (tx) => saveIdentityProvider(tx, tenantId, provider));
    this.#providers.delete(tenantId);
    return token;
  }

  /** Removes the tenant's identity provider: end-user tokens are refused from then on. */
  async remove(tenantId: string): Promise<boolean> {
    const { value } = await this.#router.write({ tenantId }, (tx) => deleteIdentityProvider(tx, tenantId));
    this.#providers.delete(tenantId);
    return value;
  }

  /** The end user a token names, or a 401 (an invalid token) or 403 (a valid one without a usable user) saying why. */
  async verify(tenantId: string, token: string): Promise<EndUser> {
    const provider = await this.providerOf(tenantId);
    if (!provider) {
      throw new AppError(
        "unauthorized",
        "this tenant has no identity provider for end-user tokens: register one with PUT /v1/identity-provider",
      );
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#keySet(tenantId, provider), {
        issuer: provider.issuer,
        audience: provider.audience,
        algorithms: ALGORITHMS,
        requiredClaims: ["exp"],
      }));
    } catch (error) {
      throw tokenError(error, provider);
    }
    const id = payload[provider.userClaim];
    if (typeof id !== "string" || !PRINCIPAL_PATTERN.test(`user:${id}`)) {
      throw new AppError(
        "forbidden",
        `the end-user token has no usable '${provider.userClaim}' claim (a string without spaces, commas, braces or quotes)`,
      );
    }
    const groups = payload[provider.groupsClaim] ?? [];
    if (!Array.isArray(groups) || !groups.every((g) => typeof g === "string" && PRINCIPAL_PATTERN.test(`group:${g}`))) {
      throw new AppError(
        "forbidden",
        `the end-user token's '${provider.groupsClaim}' claim is not a list of group names (strings without spaces, commas, braces or quotes)`,
      );
    }
    return { id, groups: groups as string[] };
  }

  #keySet(tenantId: string, provider: IdentityProvider): JWTVerifyGetKey {
    const source = provider.jwksUrl ?? JSON.stringify(provider.jwks);
    const key = `${tenantId}\u0000${source}`;
    let keySet = this.#keySets.get(key);
    if (!keySet) {
      keySet = provider.jwksUrl
        ? createRemoteJWKSet(new URL(provider.jwksUrl), {
            cooldownDuration: this.#options.jwksCooldownMs,
            timeoutDuration: 5_000,
            [customFetch]: this.#fetch,
          })
        : createLocalJWKSet(provider.jwks ?? { keys: [] });
      this.#keySets.set(key, keySet);
    }
    return keySet;
  }
}

function tokenError(error: unknown, provider: IdentityProvider): AppError {
  if (error instanceof errors.JWTExpired) return new AppError("unauthorized", "the end-user token has expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "iss") {
      return new AppError(
        "unauthorized",
        `the end-user token was not issued by the tenant's provider (${provider.issuer})`,
      );
    }
    if (error.claim === "aud") {
      return new AppError("unauthorized", `the end-user token is not meant for this audience (${provider.audience})`);
    }
    return new AppError("unauthorized", `the end-user token's '${error.claim}' claim is not valid: ${error.message}`);
  }
  const refused = causeOf(error, PrivateAddressError);
  if (refused) {
    return new AppError("forbidden", `the tenant's identity provider cannot be used: ${refused.message}`);
  }
  if (
    error instanceof errors.JWKSTimeout ||
    error instanceof errors.JWKSInvalid ||
    (error instanceof errors.JOSEError && /fetch|request|Expected 200/i.test(error.message))
  ) {
    return new AppError("unavailable", "the identity provider's keys could not be fetched; retry shortly", {
      retryAfterSeconds: 5,
    });
  }
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) {
    return new AppError(
      "unauthorized",
      "the end-user token's signature does not verify with the identity provider's keys",
    );
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return new AppError(
      "unauthorized",
      "the end-user token is not signed with a public-key algorithm (alg none and shared secrets are refused)",
    );
  }
  if (error instanceof errors.JOSEError) {
    return new AppError("unauthorized", `the end-user token is not a valid signed JWT: ${error.message}`);
  }
  return new AppError("unavailable", `the identity provider's keys could not be used: ${(error as Error).message}`, {
    retryAfterSeconds: 5,
  });
}

/** The first error of this class in `error`'s chain of causes. */
function causeOf<E extends Error>(error: unknown, type: new (...args: never[]) => E): E | undefined {
  for (let e: unknown = error; e instanceof Error; e = e.cause) if (e instanceof type) return e;
  return undefined;
}
