import { formatLsn, type Lsn, parseLsn } from "./lsn.ts";

/**
 * What a client sends back after a write so that its reads see it: the primary's WAL position after
 * the commit and the timeline it was written on ("2:0/16B3748"). A failover starts a new timeline whose
 * history equals the old one's up to the switch point, so a position is only comparable with a node's
 * once the timelines are known. Tokens from before timelines were carried ("0/16B3748") still parse,
 * with the timeline unknown.
 */
export interface ConsistencyToken {
  readonly lsn: Lsn;
  readonly timeline: number | null;
}

/**
 * The token of a write whose commit position could not be read, or of a caller that needs the primary:
 * only the primary satisfies it. Recognised by identity, so a client sending the same text back gets
 * a token like any other (clamped to the primary's position), never a pass to the primary.
 */
export const PRIMARY_ONLY_TOKEN: ConsistencyToken = Object.freeze({ lsn: 0xffffffffffffffffn, timeline: null });

const TOKEN_PATTERN = /^(?:([1-9][0-9]{0,9}):)?([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})$/;

export function parseToken(text: string): ConsistencyToken | null {
  const match = TOKEN_PATTERN.exec(text);
  const lsn = match?.[2] === undefined ? null : parseLsn(match[2]);
  if (!match || lsn === null) return null;
  const timeline = match[1] === undefined ? null : Number(match[1]);
  if (timeline !== null && timeline > 0xffffffff) return null;
  return { lsn, timeline };
}

export function formatToken(token: ConsistencyToken): string {
  return token.timeline === null ? formatLsn(token.lsn) : `${token.timeline}:${formatLsn(token.lsn)}`;
}

export function isPrimaryOnly(token: ConsistencyToken): boolean {
  return token === PRIMARY_ONLY_TOKEN;
}

/** The later of two tokens: a newer timeline first (it follows the older's switch), then the position. */
export function laterToken(a: ConsistencyToken, b: ConsistencyToken): ConsistencyToken {
  if (a.timeline !== null && b.timeline !== null && a.timeline !== b.timeline) return a.timeline > b.timeline ? a : b;
  return a.lsn >= b.lsn ? a : b;
}
