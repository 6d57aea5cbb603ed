import type { MiddlewareHandler } from "hono";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { AppError } from "../errors.ts";
import type { Scope } from "../tenancy/api-keys.ts";
import type { Authenticator } from "../tenancy/authenticator.ts";
import type { AppEnv } from "./context.ts";

/**
 * Requires `Authorization: Bearer <api key>` with the given scope, sets the principal, and applies
 * the key's rate limit: at most `burst` requests in each window of burst/perSecond seconds, so
 * `perSecond` on average with room for bursts.
 */
export function requireApiKey(
  authenticator: Authenticator,
  limit: { perSecond: number; burst: number },
): (scope: Scope) => MiddlewareHandler<AppEnv> {
  const limiter = new RateLimiterMemory({ points: limit.burst, duration: limit.burst / limit.perSecond });
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
      const principal = await authenticator.authenticate(match[1]);
      if (!principal) throw new AppError("unauthorized", "the API key is unknown or revoked");
      if (!principal.scopes.includes(scope) && !principal.scopes.includes("admin")) {
        throw new AppError("forbidden", `this API key lacks the '${scope}' scope`);
      }
      try {
        await limiter.consume(principal.keyId);
      } catch (rejection) {
        const wait = rejection instanceof RateLimiterRes ? Math.ceil(rejection.msBeforeNext / 1000) : 1;
        throw new AppError("rate_limited", `rate limit of this API key exceeded (${limit.perSecond}/s, bursts of ${limit.burst}); retry in ${wait} s`, {
          retryAfterSeconds: Math.max(1, wait),
        });
      }
      c.set("principal", principal);
      await next();
    };
}
