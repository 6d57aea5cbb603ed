/**
 * Structure-aware, token-budgeted chunking with overlap.
 *
 * The text is cut into segments (headings, paragraphs, and, for paragraphs over the budget,
 * sentences or word runs); segments are packed greedily into chunks of at most `maxTokens`. A heading
 * closes the current chunk once it holds `minTokens`, so chunks follow the document's sections. A
 * chunk closed for lack of room hands its last segments (up to `overlapTokens`) to the next one.
 * Every chunk is exactly `text.slice(charStart, charEnd)`, so citations can point into the document.
 */

import { estimateTokens } from "./token-estimate.ts";

export interface ChunkingOptions {
  readonly maxTokens: number;
  readonly overlapTokens: number;
  /** A heading starts a new chunk only when the current one holds at least this many tokens. */
  readonly minTokens: number;
}

export const DEFAULT_CHUNKING: ChunkingOptions = { maxTokens: 384, overlapTokens: 48, minTokens: 64 };

/**
 * Bounds that keep a document's chunk count proportional to its size: at least this many tokens a
 * chunk, and an overlap of at most half of it, so each chunk advances by at least a quarter of this.
 */
export const MIN_CHUNK_TOKENS = 64;

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

const FENCE = /^(```|~~~)/;

/**
 * An ATX heading line ("## Title ##"): its level and its text without the closing hashes. A
 * hand-written scan, linear in the line: the regex it replaces backtracked quadratically on a
 * heading followed by a long run of spaces.
 */
export function parseHeading(line: string): { level: number; text: string } | null {
  let level = 0;
  while (level < line.length && line[level] === "#") level++;
  if (level < 1 || level > 6) return null;
  let start = level;
  while (start < line.length && (line[start] === " " || line[start] === "\t")) start++;
  if (start === level || start === line.length) return null;
  let end = line.length;
  while (end > start + 1 && " \t#".includes(line[end - 1] as string)) end--;
  return { level, text: line.slice(start, end) };
}

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
    const heading = inFence ? null : parseHeading(line);
    if (FENCE.test(line.trimStart())) inFence = !inFence;
    if (heading) {
      flush();
      path.splice(heading.level - 1, path.length, heading.text.trim());
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
  const sentences = sentenceEnds(text, seg.start, seg.end).map((end, i, ends) =>
    segment(text, i === 0 ? seg.start : (ends[i - 1] as number), end, seg.headingPath, false),
  );
  return sentences.flatMap((s) => (s.tokens <= maxTokens ? [s] : wordRuns(text, s, maxTokens)));
}

const SENTENCE_MARKS = ".!?";
const CLOSERS = "\"')]";

/**
 * Where sentences of text[start, end) end: after a run of . ! ? (and closing quotes or brackets)
 * that white space or the end follows, plus that white space — so "1.5" and "e.g.," stay whole.
 * One pass, each character looked at a bounded number of times: no backtracking on hostile input
 * such as a long run of punctuation.
 */
function sentenceEnds(text: string, start: number, end: number): number[] {
  const ends: number[] = [];
  let i = start;
  while (i < end) {
    if (!SENTENCE_MARKS.includes(text[i] as string)) {
      i++;
      continue;
    }
    let j = i;
    while (j < end && SENTENCE_MARKS.includes(text[j] as string)) j++;
    while (j < end && CLOSERS.includes(text[j] as string)) j++;
    if (j === end || /\s/.test(text[j] as string)) {
      while (j < end && /\s/.test(text[j] as string)) j++;
      if (j > (ends[ends.length - 1] ?? start)) ends.push(j);
    }
    i = j;
  }
  if ((ends[ends.length - 1] ?? start) < end) ends.push(end);
  return ends;
}

/**
 * Packs the words of a segment into runs within the budget. A "word" longer than the budget (text
 * with no white space) is cut every `maxTokens` characters — never more tokens than characters —
 * so no chunk outgrows the budget whatever the text.
 */
function wordRuns(text: string, seg: Segment, maxTokens: number): Segment[] {
  const runs: Segment[] = [];
  let runStart = seg.start;
  let runTokens = 0;
  let lastEnd = seg.start;
  const add = (start: number, end: number) => {
    const tokens = estimateTokens(text.slice(start, end));
    if (runTokens > 0 && runTokens + tokens > maxTokens) {
      runs.push(segment(text, runStart, lastEnd, seg.headingPath, false));
      runStart = start;
      runTokens = 0;
    }
    runTokens += tokens;
    lastEnd = end;
  };
  for (const match of text.slice(seg.start, seg.end).matchAll(/\S+/g)) {
    const start = seg.start + (match.index ?? 0);
    const end = start + match[0].length;
    for (let piece = start; piece < end;) {
      let pieceEnd = Math.min(end, piece + maxTokens);
      // Never between the two halves of a surrogate pair.
      if (pieceEnd < end && isLowSurrogate(text.charCodeAt(pieceEnd))) pieceEnd++;
      add(piece, pieceEnd);
      piece = pieceEnd;
    }
  }
  runs.push(segment(text, runStart, lastEnd, seg.headingPath, false));
  return runs;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
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
