import type { RequestIdVariables } from "hono/request-id";
import type { Logger } from "../logger.ts";
import type { Principal } from "../tenancy/principal.ts";

/** Variables every handler can read from the Hono context. */
export type AppVariables = RequestIdVariables & {
  logger: Logger;
  principal: Principal;
};

export type AppEnv = { Variables: AppVariables };
