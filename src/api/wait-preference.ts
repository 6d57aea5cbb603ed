import type { Context } from "hono";
import { InvalidRequestError } from "../errors.ts";

/** The longest a write waits for its documents to be searchable; a longer ask is cut to it. */
export const MAX_WAIT_SECONDS = 60;

/**
 * How long the client asks a write to wait for its documents, in seconds (0: answer at once):
 * `Prefer: wait=N` (RFC 7240), or `?wait=N` for clients that cannot set headers.
 */
export function requestedWait(c: Context): number {
  const preferred = /(?:^|[,;\s])wait\s*=\s*"?(\d+)"?/i.exec(c.req.header("Prefer") ?? "")?.[1];
  const text = preferred ?? c.req.query("wait");
  if (text === undefined || text === "") return 0;
  const seconds = Number(text);
  if (!Number.isInteger(seconds) || seconds < 0) {
    throw new InvalidRequestError(`wait must be a whole number of seconds, at most ${MAX_WAIT_SECONDS}; got "${text}"`);
  }
  const applied = Math.min(seconds, MAX_WAIT_SECONDS);
  if (preferred !== undefined) c.header("Preference-Applied", `wait=${applied}`);
  return applied;
}
