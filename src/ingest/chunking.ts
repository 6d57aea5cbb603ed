/**
 * Structure-aware, token-budgeted chunking with overlap.
 *
 * The text is cut into segments (headings, paragraphs, and, for paragraphs over the budget,
 * sentences or word runs); segments are packed greedily into chunks of at most `maxTokens`. A heading
 * closes the current chunk once it holds `minTokens`, so chunks follow the document's sections. A
 * chunk closed for lack of room hands its last segments (up to `overlapTokens`) to the next one.
 * Every chunk is exactly `text.slice(charStart, charEnd)`, so citations can point into the document.
 */

import { estimateTokens } from "../text/token-estimate.ts";

export interface ChunkingOptions {
  readonly maxTokens: number;
  readonly overlapTokens: number;
  /** A heading starts a new chunk only when the current one holds at least this many tokens. */
  readonly minTokens: number;
}

export const DEFAULT_CHUNKING: ChunkingOptions = { maxTokens: 384, overlapTokens: 48, minTokens: 64 };

export interface Chunk {
  readonly content: string;
  readonly headingPath: readonly string[];
  readonly charStart: number;
  readonly charEnd: number;
  readonly tokenCount: number;
}

interface Segment {
  readonly start: number;
  readonly end: number;
  readonly tokens: number;
  readonly headingPath: readonly string[];
  readonly isHeading: boolean;
}

const HEADING = /^(#{1,6})[ \t]+(.+?)[ \t#]*$/;
const FENCE = /^(```|~~~)/;

/** Headings, paragraphs and fenced code blocks, with their offsets and the headings above them. */
function blocks(text: string): Segment[] {
  const out: Segment[] = [];
  const path: string[] = [];
  let paragraphStart = -1;
  let paragraphEnd = -1;
  let inFence = false;
  const flush = () => {
    if (paragraphStart >= 0) {
      out.push(segment(text, paragraphStart, paragraphEnd, [...path], false));
      paragraphStart = -1;
    }
  };
  let offset = 0;
  for (const line of text.split("\n")) {
    const lineStart = offset;
    const lineEnd = offset + line.length;
    offset = lineEnd + 1;
    const heading = inFence ? null : HEADING.exec(line);
    if (FENCE.test(line.trimStart())) inFence = !inFence;
    if (heading?.[1] && heading[2]) {
      flush();
      const level = heading[1].length;
      path.splice(level - 1, path.length, heading[2].trim());
      out.push(segment(text, lineStart, lineEnd, [...path], true));
    } else if (line.trim() === "" && !inFence) {
      flush();
    } else {
      if (paragraphStart < 0) paragraphStart = lineStart + (line.length - line.trimStart().length);
      paragraphEnd = lineEnd;
    }
  }
  flush();
  return out;
}

function segment(
  text: string,
  start: number,
  end: number,
  headingPath: readonly string[],
  isHeading: boolean,
): Segment {
  let trimmedEnd = end;
  while (trimmedEnd > start && /\s/.test(text[trimmedEnd - 1] ?? "")) trimmedEnd--;
  return {
    start,
    end: trimmedEnd,
    tokens: estimateTokens(text.slice(start, trimmedEnd)),
    headingPath,
    isHeading,
  };
}

/** Cuts a segment over the budget at sentence ends, and a sentence still over it at word runs. */
function splitOversized(text: string, seg: Segment, maxTokens: number): Segment[] {
  if (seg.tokens <= maxTokens) return [seg];
  // A sentence ends at . ! ? followed by white space, so "1.5" and "e.g.," stay whole.
  const sentences = piecesBy(text, seg, /[\s\S]+?(?:[.!?]+["')\]]*(?=\s|$)|$)\s*/gy);
  return sentences.flatMap((s) => (s.tokens <= maxTokens ? [s] : wordRuns(text, s, maxTokens)));
}

function piecesBy(text: string, seg: Segment, pattern: RegExp): Segment[] {
  const pieces: Segment[] = [];
  const body = text.slice(seg.start, seg.end);
  pattern.lastIndex = 0;
  for (let match = pattern.exec(body); match && match[0].length > 0; match = pattern.exec(body)) {
    const start = seg.start + match.index;
    const piece = segment(text, start, start + match[0].length, seg.headingPath, false);
    if (piece.end > piece.start) pieces.push(piece);
  }
  return pieces.length > 0 ? pieces : [seg];
}

function wordRuns(text: string, seg: Segment, maxTokens: number): Segment[] {
  const runs: Segment[] = [];
  let runStart = seg.start;
  let runTokens = 0;
  let lastEnd = seg.start;
  for (const match of text.slice(seg.start, seg.end).matchAll(/\S+/g)) {
    const start = seg.start + (match.index ?? 0);
    const end = start + match[0].length;
    const tokens = estimateTokens(match[0]);
    if (runTokens > 0 && runTokens + tokens > maxTokens) {
      runs.push(segment(text, runStart, lastEnd, seg.headingPath, false));
      runStart = start;
      runTokens = 0;
    }
    runTokens += tokens;
    lastEnd = end;
  }
  runs.push(segment(text, runStart, lastEnd, seg.headingPath, false));
  return runs;
}

export function chunkText(text: string, options: ChunkingOptions = DEFAULT_CHUNKING): Chunk[] {
  const segments = blocks(text).flatMap((b) => splitOversized(text, b, options.maxTokens));
  const chunks: Chunk[] = [];
  let current: Segment[] = [];
  let currentTokens = 0;
  const emit = () => {
    const first = current[0];
    const last = current[current.length - 1];
    if (!first || !last || current.every((s) => s.isHeading)) return;
    const firstBody = current.find((s) => !s.isHeading) ?? first;
    chunks.push({
      content: text.slice(first.start, last.end),
      headingPath: firstBody.headingPath,
      charStart: first.start,
      charEnd: last.end,
      tokenCount: currentTokens,
    });
  };
  for (const seg of segments) {
    if (seg.isHeading && currentTokens >= options.minTokens) {
      emit();
      current = [];
      currentTokens = 0;
    } else if (currentTokens + seg.tokens > options.maxTokens && current.length > 0) {
      emit();
      const overlap = tailWithin(current, options.overlapTokens, options.maxTokens - seg.tokens);
      current = overlap;
      currentTokens = overlap.reduce((sum, s) => sum + s.tokens, 0);
    }
    current.push(seg);
    currentTokens += seg.tokens;
  }
  emit();
  return chunks;
}

/** The last segments of a closed chunk that fit the overlap and still leave room for the next segment. */
function tailWithin(segments: readonly Segment[], overlapTokens: number, room: number): Segment[] {
  const limit = Math.min(overlapTokens, room);
  const tail: Segment[] = [];
  let tokens = 0;
  for (let i = segments.length - 1; i >= 0; i--) {
    const seg = segments[i] as Segment;
    if (seg.isHeading || tokens + seg.tokens > limit) break;
    tail.unshift(seg);
    tokens += seg.tokens;
  }
  return tail;
}
