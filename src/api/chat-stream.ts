import type { Context } from "hono";
import type { SSEStreamingApi } from "hono/streaming";
import type { EventRecorder } from "../analytics/event-recorder.ts";
import type { ChatEvent, ChatRequest, ChatService, Citation } from "../chat/chat.service.ts";
import { AppError } from "../errors.ts";
import type { Principal } from "../tenancy/principal.ts";
import { readConsistencyToken } from "./consistency.ts";
import type { AppEnv } from "./context.ts";
import { statusOf } from "./error-handler.ts";

/**
 * What the chat routes (/v1/chat and the OpenAI facade) share: running an answer with its usage
 * event, reading its events, collecting a whole answer, and the SSE error event.
 */

export type StartEvent = Extract<ChatEvent, { type: "start" }>;
export type EndEvent = Extract<ChatEvent, { type: "end" }>;

export function citationJson(c: Citation) {
  return {
    number: c.number,
    chunk_id: c.chunkId,
    document_id: c.documentId,
    external_id: c.externalId,
    title: c.title,
    char_start: c.charStart,
    char_end: c.charEnd,
    text: c.text,
  };
}

/** A signal that fires when the HTTP client goes away, to cancel the upstream request. */
export function clientSignal(c: Context): AbortController {
  const controller = new AbortController();
  c.req.raw.signal.addEventListener("abort", () => controller.abort());
  return controller;
}

/**
 * The next event. The first is pulled before any response byte is sent: errors up to the first upstream token
 * (unknown collection, 429 from admission, backend down) become ordinary JSON errors with a status.
 */
export async function nextEvent(events: AsyncGenerator<ChatEvent>): Promise<ChatEvent | undefined> {
  const first = await events.next();
  return first.done ? undefined : first.value;
}

export async function writeStreamError(stream: SSEStreamingApi, error: unknown): Promise<void> {
  const appError = error instanceof AppError ? error : new AppError("bad_gateway", "the answer was interrupted");
  await stream.writeSSE({
    event: "error",
    data: JSON.stringify({ error: { code: appError.code, message: appError.message } }),
  });
}

/** Passes the chat's events through and records one usage event when it ends, however it ends. */
async function* recorded(
  chat: AsyncGenerator<ChatEvent>,
  record: (httpStatus: number, start: StartEvent | undefined, end: EndEvent | undefined) => void,
): AsyncGenerator<ChatEvent> {
  let start: StartEvent | undefined;
  let end: EndEvent | undefined;
  let status = 499; // the client went away before the end, unless set below
  try {
    for await (const event of chat) {
      if (event.type === "start") start = event;
      if (event.type === "end") end = event;
      yield event;
    }
    status = 200;
  } catch (error) {
    status = statusOf(error);
    throw error;
  } finally {
    record(status, start, end);
  }
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

/** Runs an answer whose usage event is recorded when it ends, however it ends. */
export function recordedAnswers(service: ChatService, usage: EventRecorder) {
  return (c: Context<AppEnv>, principal: Principal, request: ChatRequest, abort: AbortController) => {
    const started = performance.now();
    return recorded(service.ask(principal, request, readConsistencyToken(c), abort.signal), (httpStatus, start, end) =>
      usage.record({
        tenantId: principal.tenantId,
        kind: "chat",
        requestId: c.get("requestId"),
        httpStatus,
        latencyMs: performance.now() - started,
        payload: {
          collection: request.collection,
          question: request.question,
          conversation_id: start?.conversationId ?? null,
          message_id: end?.messageId ?? null,
          model: end?.model ?? null,
          served_by: start?.retrieval.servedBy ?? null,
          timings_ms: start?.retrieval.timingsMs ?? {},
          prompt_tokens: end?.usage?.promptTokens ?? 0,
          completion_tokens: end?.usage?.completionTokens ?? 0,
          results: (end?.citations ?? []).map((citation) => ({ chunk_id: citation.chunkId, rank: citation.number })),
        },
      }),
    );
  };
}
