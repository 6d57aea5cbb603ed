import { locationJson } from "../retrieval/chunk-location.ts";
import type { ChatUsage } from "../inference/chat-client.ts";
import type { ChatEvent, Citation } from "./chat.service.ts";

/** Reading an answer's events, and their JSON shapes: what the chat routes and batch lines share. */

export type StartEvent = Extract<ChatEvent, { type: "start" }>;
export type EndEvent = Extract<ChatEvent, { type: "end" }>;

/**
 * The next event. The routes pull the first before sending any response byte: errors up to the first
 * upstream token (unknown collection, 429 from admission, backend down) become ordinary JSON errors.
 */
export async function nextEvent(events: AsyncGenerator<ChatEvent>): Promise<ChatEvent | undefined> {
  const next = await events.next();
  return next.done ? undefined : next.value;
}

/** Reads an answer to its end: the start, the tokens joined, and the end event. */
export async function collectAnswer(
  first: ChatEvent | undefined,
  events: AsyncGenerator<ChatEvent>,
): Promise<{ start: StartEvent | undefined; text: string; end: EndEvent | undefined }> {
  let start: StartEvent | undefined;
  let end: EndEvent | undefined;
  let text = "";
  for (let event = first; event; event = await nextEvent(events)) {
    if (event.type === "start") start = event;
    if (event.type === "token") text += event.text;
    if (event.type === "end") end = event;
  }
  return { start, text, end };
}

export function citationJson(c: Citation) {
  return {
    number: c.number,
    chunk_id: c.chunkId,
    document_id: c.documentId,
    external_id: c.externalId,
    title: c.title,
    heading_path: c.location.headingPath,
    location: locationJson(c.location, c.title ?? c.externalId),
    char_start: c.charStart,
    char_end: c.charEnd,
    text: c.text,
  };
}

/**
 * Citations as a conversation stored them (the service's objects as JSON), in the API's shape; those
 * stored before chunks had locations get an empty one.
 */
export function storedCitationsJson(stored: unknown) {
  if (!Array.isArray(stored)) return [];
  const noLocation = { fileName: null, pageStart: null, pageEnd: null, pageUnit: null, headingPath: [] };
  return (stored as Citation[]).map((c) => citationJson({ ...c, location: c.location ?? noLocation }));
}

/** OpenAI's usage object (null when the backend reported none). */
export function usageJson(usage: ChatUsage | null) {
  return usage
    ? {
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        total_tokens: usage.promptTokens + usage.completionTokens,
      }
    : null;
}
