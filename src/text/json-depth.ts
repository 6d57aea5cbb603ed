import { InvalidRequestError } from "../errors.ts";

/**
 * The deepest nesting any JSON input may have (request bodies, import and batch lines, metadata).
 * Real requests nest a few levels; a value nested hundreds of thousands deep costs a parse and every
 * later walk of it (validation, copying, serialising) far more than its bytes suggest.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether `text`, read as JSON, nests objects and arrays at most `maxDepth` deep. One pass over the
 * characters with no backtracking, stopping at the first level too deep, so it costs no more than
 * reading the text and can run before JSON.parse. Brackets inside strings do not count.
 */
export function jsonDepthWithin(text: string, maxDepth: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === 0x5c /* \ */) i += 1;
      else if (code === 0x22 /* " */) inString = false;
    } else if (code === 0x22) {
      inString = true;
    } else if (code === 0x7b /* { */ || code === 0x5b /* [ */) {
      depth += 1;
      if (depth > maxDepth) return false;
    } else if (code === 0x7d /* } */ || code === 0x5d /* ] */) {
      depth -= 1;
    }
  }
  return true;
}

/** What is wrong with `text`'s nesting, said of whatever holds it (null: nothing). */
export function deepJsonProblem(text: string): string | null {
  return jsonDepthWithin(text) ? null : `nests objects or arrays more than ${MAX_JSON_DEPTH} levels deep`;
}

/** Throws a 400 naming `what` and the limit when `text` nests deeper than MAX_JSON_DEPTH. */
export function refuseDeepJson(text: string, what: string): void {
  const problem = deepJsonProblem(text);
  if (problem) throw new InvalidRequestError(`${what} ${problem}; flatten it`);
}
