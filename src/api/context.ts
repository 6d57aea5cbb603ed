import type { RequestIdVariables } from "hono/request-id";
import type { Logger } from "../logger.ts";

/** Variables every handler can read from the Hono context. */
export type AppVariables = RequestIdVariables & {
  logger: Logger;
};

export type AppEnv = { Variables: AppVariables };
