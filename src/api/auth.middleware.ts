import type { MiddlewareHandler } from "hono";
import { AppError } from "../errors.ts";
import type { Scope } from "../tenancy/api-keys.ts";
import type { Authenticator } from "../tenancy/authenticator.ts";
import type { AppEnv } from "./context.ts";

/** Requires `Authorization: Bearer <api key>` with the given scope; sets the principal. */
export function requireApiKey(authenticator: Authenticator): (scope: Scope) => MiddlewareHandler<AppEnv> {
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
      c.set("principal", principal);
      await next();
    };
}
