import type { RequestIdVariables } from "hono/request-id";
import type { Priority } from "../inference/admission.ts";
import type { Logger } from "../logger.ts";
import type { Principal } from "../tenancy/principal.ts";

/** Variables every handler can read from the Hono context. */
export type AppVariables = RequestIdVariables & {
  logger: Logger;
  principal: Principal;
  /** The inference scheduler's class of this request's backend calls (batch lines: "batch"). */
  priority?: Priority;
};

/**
 * A request the platform makes to itself (a batch line), through `app.http.request(…, env)`: it acts
 * for this principal without a key. Only in-process callers can set it; a request from the network
 * carries the Node server's bindings instead.
 */
export interface InternalCall {
  readonly principal: Principal;
  readonly priority: Priority;
}

export type AppEnv = { Variables: AppVariables; Bindings: { internal?: InternalCall } };
