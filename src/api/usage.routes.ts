import type { MiddlewareHandler } from "hono";
import { Hono } from "hono";
import type { Scope } from "../tenancy/principal.ts";
import type { Quotas } from "../tenancy/quotas.ts";
import type { AppEnv } from "./context.ts";
import { documented } from "./route-docs.ts";

/** The tenant's quotas and what it uses of each now. */
export function usageRoutes(quotas: Quotas, auth: (scope: Scope) => MiddlewareHandler<AppEnv>): Hono<AppEnv> {
  return new Hono<AppEnv>().get(
    "/v1/usage",
    documented("The tenant's quotas, each with what it uses", { responses: { 200: "Each quota's used and limit" } }),
    auth("read"),
    async (c) => c.json({ object: "usage", quotas: await quotas.usage(c.get("principal")) }),
  );
}
