import type { HttpBindings } from "@hono/node-server";
import type { RequestIdVariables } from "hono/request-id";
import type { Logger } from "../logger.ts";
import type { Principal } from "../tenancy/principal.ts";

/** Variables every handler can read from the Hono context. */
export type AppVariables = RequestIdVariables & {
  logger: Logger;
  principal: Principal;
};

/** The Node request (its socket's address), when served by @hono/node-server; absent under `app.request`. */
export type AppEnv = { Bindings: Partial<HttpBindings>; Variables: AppVariables };
