import type { Context, MiddlewareHandler } from "hono";
import { getConnInfo } from "@hono/node-server/conninfo";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { AppError } from "../errors.ts";
import type { Principal, Scope } from "../tenancy/principal.ts";
import type { Authenticator } from "../tenancy/authenticator.ts";
import type { EndUsers } from "../tenancy/end-users.ts";
import type { AppEnv } from "./context.ts";

/** The header carrying the end user's token (a JWT of the tenant's identity provider) beside the tenant's key. */
export const END_USER_HEADER = "X-End-User-Token";

/**
 * Requires `Authorization: Bearer <api key>` with the given scope, sets the principal, and applies
 * the key's rate limit: at most `burst` requests in each window of burst/perSecond seconds, so
 * `perSecond` on average with room for bursts. With an end user's token (END_USER_HEADER), the
 * request reads as that user; a tenant may require one of its read-only tenant-wide keys.
 */
export function requireApiKey(
  authenticator: Authenticator,
  endUsers: EndUsers,
  limit: { perSecond: number; burst: number; tenantPerSecond: number; unknownKeysPerMinute: number },
  /** False in embedded mode: PGlite's single role is its superuser, which row-level security does not bind. */
  accessEnforced: boolean,
): (scope: Scope) => MiddlewareHandler<AppEnv> {
  const keyLimiter = new RateLimiterMemory({ points: limit.burst, duration: limit.burst / limit.perSecond });
  const tenantLimiter = new RateLimiterMemory({ points: limit.tenantPerSecond * 2, duration: 2 });
  // Unknown keys cost database lookups before there is a key to rate-limit: their misses are
  // limited per client address, and in total (guessing spread over many addresses).
  const missesPerAddress = new RateLimiterMemory({ points: limit.unknownKeysPerMinute, duration: 60 });
  const missesInTotal = new RateLimiterMemory({ points: limit.unknownKeysPerMinute * 10, duration: 60 });
  const refuseUnknownKeys = async (address: string) => {
    const [own, total] = await Promise.all([missesPerAddress.get(address), missesInTotal.get("all")]);
    const spent =
      (own?.consumedPoints ?? 0) >= limit.unknownKeysPerMinute ||
      (total?.consumedPoints ?? 0) >= limit.unknownKeysPerMinute * 10;
    if (!spent) return;
    const wait = Math.ceil(Math.max(own?.msBeforeNext ?? 0, total?.msBeforeNext ?? 0) / 1000);
    throw new AppError("rate_limited", `too many unknown API keys were tried; retry in ${wait} s`, {
      retryAfterSeconds: Math.max(1, wait),
    });
  };
  return (scope) =>
    async function authenticate(c, next) {
      const header = c.req.header("Authorization") ?? "";
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      if (!match?.[1]) {
        throw new AppError(
          "unauthorized",
          "missing API key: send 'Authorization: Bearer <key>' (create one with 'pgrag keys create')",
        );
      }
      const key = match[1];
      const address = clientAddress(c);
      if (!authenticator.isCached(key)) await refuseUnknownKeys(address);
      const principal = await authenticator.authenticate(key);
      if (!principal) {
        await Promise.all([missesPerAddress.penalty(address), missesInTotal.penalty("all")]);
        throw new AppError("unauthorized", "the API key is unknown or revoked");
      }
      if (!principal.scopes.includes(scope) && !principal.scopes.includes("admin")) {
        throw new AppError("forbidden", `this API key lacks the '${scope}' scope`);
      }
      await consumeOrRefuse(
        keyLimiter,
        principal.keyId,
        `this API key (${limit.perSecond}/s, bursts of ${limit.burst})`,
      );
      // A tenant's keys share one allowance too: more keys do not buy a bigger share of the platform.
      await consumeOrRefuse(
        tenantLimiter,
        principal.tenantId,
        `this tenant's keys together (${limit.tenantPerSecond}/s, bursts of ${limit.tenantPerSecond * 2})`,
      );
      const requester = await asEndUser(endUsers, principal, c.req.header(END_USER_HEADER), scope);
      if (requester.principals !== null && !accessEnforced) {
        throw new AppError(
          "forbidden",
          "keys scoped to principals and end users need the native topology: the embedded database's single role is not bound by row-level security",
        );
      }
      c.set("principal", requester);
      await next();
    };
}

/**
 * The requester as its end user when a token comes (that user's principals, its own conversations);
 * a tenant-wide key alone where the tenant requires end users is refused for reading, unless it
 * administers the tenant.
 */
async function asEndUser(
  endUsers: EndUsers,
  principal: Principal,
  token: string | undefined,
  scope: Scope,
): Promise<Principal> {
  // An empty header is a token too (a logged-out session's), refused as invalid rather than ignored.
  if (token !== undefined) {
    if (principal.principals) {
      throw new AppError(
        "invalid_request",
        `this API key is scoped to principals and reads as them: send no ${END_USER_HEADER} with it`,
      );
    }
    const user = await endUsers.verify(principal.tenantId, token);
    return {
      ...principal,
      principals: [`user:${user.id}`, ...user.groups.map((group) => `group:${group}`)],
      owner: `user:${user.id}`,
    };
  }
  if (scope === "read" && principal.principals === null && !principal.scopes.includes("admin")) {
    const provider = await endUsers.providerOf(principal.tenantId);
    if (provider?.requireEndUser) {
      throw new AppError(
        "forbidden",
        `this tenant reads only as an end user: send the user's token as ${END_USER_HEADER} (or use a key scoped to principals)`,
      );
    }
  }
  return principal;
}

/**
 * The API-key check, refusing requesters that read as principals (a scoped key, an end user): what it
 * guards reads or changes the whole tenant (imports, batches and their files, document writes).
 */
export function tenantWideOnly(
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  what: string,
): (scope: Scope) => MiddlewareHandler<AppEnv> {
  return (scope) => {
    const check = auth(scope);
    return (c, next) =>
      check(c, async () => {
        if (c.get("principal").principals !== null) {
          throw new AppError(
            "forbidden",
            `${what} need a tenant-wide key: a key scoped to principals, or an end user, reads only as them`,
          );
        }
        await next();
      });
  };
}

/** Takes one request from `limiter`'s bucket for `key`, or refuses with 429 and when to retry. */
async function consumeOrRefuse(limiter: RateLimiterMemory, key: string, whose: string): Promise<void> {
  try {
    await limiter.consume(key);
  } catch (rejection) {
    const wait = rejection instanceof RateLimiterRes ? Math.ceil(rejection.msBeforeNext / 1000) : 1;
    throw new AppError("rate_limited", `rate limit of ${whose} exceeded; retry in ${wait} s`, {
      retryAfterSeconds: Math.max(1, wait),
    });
  }
}

/** The peer's address; requests made in-process (tests, app.request) share one bucket. */
function clientAddress(c: Context<AppEnv>): string {
  try {
    return getConnInfo(c).remote.address ?? "local";
  } catch {
    return "local";
  }
}
