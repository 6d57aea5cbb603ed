import type { Context } from "hono";
import { formatLsn, type Lsn, parseLsn } from "../db/lsn.ts";
import { InvalidRequestError } from "../errors.ts";

export const CONSISTENCY_HEADER = "X-Consistency-Token";

/** The token a client sends back after a write; absent means "any replica within the lag bound". */
export function readConsistencyToken(c: Context): Lsn | null {
  const header = c.req.header(CONSISTENCY_HEADER);
  if (header === undefined || header === "") return null;
  const lsn = parseLsn(header.trim());
  if (lsn === null) {
    throw new InvalidRequestError(
      `${CONSISTENCY_HEADER} must be a token returned by a previous write (like "0/16B3748"), got "${header.slice(0, 40)}"`,
    );
  }
  return lsn;
}

export function setConsistencyToken(c: Context, token: Lsn): string {
  const text = formatLsn(token);
  c.header(CONSISTENCY_HEADER, text);
  return text;
}
