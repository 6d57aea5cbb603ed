import type { Context } from "hono";
import { formatToken, type ConsistencyToken, parseToken } from "../db/consistency-token.ts";
import { InvalidRequestError } from "../errors.ts";

export const CONSISTENCY_HEADER = "X-Consistency-Token";

/** The token a client sends back after a write; absent means "any replica within the lag bound". */
export function readConsistencyToken(c: Context): ConsistencyToken | null {
  const header = c.req.header(CONSISTENCY_HEADER);
  if (header === undefined || header === "") return null;
  const token = parseToken(header.trim());
  if (token === null) {
    throw new InvalidRequestError(
      `${CONSISTENCY_HEADER} must be a token returned by a previous write (like "1:0/16B3748"), got "${header.slice(0, 40)}"`,
    );
  }
  return token;
}

export function setConsistencyToken(c: Context, token: ConsistencyToken): string {
  const text = formatToken(token);
  c.header(CONSISTENCY_HEADER, text);
  return text;
}
