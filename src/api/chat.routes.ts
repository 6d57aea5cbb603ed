import { type Context, Hono, type MiddlewareHandler } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import { z } from "zod";
import type { ChatEvent, ChatRequest, ChatService, Citation } from "../chat/chat.service.ts";
import { formatLsn } from "../db/lsn.ts";
import { AppError, InvalidRequestError } from "../errors.ts";
import { searchFilterSchema } from "../retrieval/filters.ts";
import type { Principal, Scope } from "../tenancy/api-keys.ts";
import type { EventRecorder } from "../analytics/event-recorder.ts";
import { CONSISTENCY_HEADER, readConsistencyToken } from "./consistency.ts";
import { statusOf } from "./error-handler.ts";
import type { AppEnv } from "./context.ts";
import { NO_NUL_MESSAGE, noNul, validate } from "./validation.ts";

const MAX_QUESTION_CHARS = 8_000;
/** An OpenAI-style history message (a previous answer may be long); the prompt keeps what fits its budget. */
const MAX_MESSAGE_CHARS = 32_000;
const collectionName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, "not a collection name");
const question = z
  .string()
  .trim()
  .min(1, "the question is empty")
  .max(MAX_QUESTION_CHARS, `at most ${MAX_QUESTION_CHARS} characters`)
  .refine(noNul, NO_NUL_MESSAGE);

export const chatBody = z
  .object({
    question,
    collection: collectionName,
    conversation_id: z.uuid("not a conversation id").nullish(),
    stream: z.boolean().default(true),
    mode: z.enum(["hybrid", "vector", "bm25"]).optional(),
    k: z.number().int().min(1).max(50).optional(),
    filter: searchFilterSchema.optional(),
  })
  .strict();

export const openAiBody = z.object({
  model: z.string().max(200).optional(),
  messages: z
    .array(
      z
        .object({
          role: z.enum(["system", "user", "assistant", "developer"]),
          content: z.union([
            z.string().max(MAX_MESSAGE_CHARS, `at most ${MAX_MESSAGE_CHARS} characters`).refine(noNul, NO_NUL_MESSAGE),
            z.null(),
          ]),
        })
        .loose(),
    )
    .min(1, "messages must not be empty")
    .max(200),
  stream: z.boolean().default(false),
  /** pgrag's extra: the collection to retrieve from (or use model "rag:<collection>"). */
  collection: collectionName.optional(),
  filter: searchFilterSchema.optional(),
});

function citationJson(c: Citation) {
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
function clientSignal(c: Context): AbortController {
  const controller = new AbortController();
  c.req.raw.signal.addEventListener("abort", () => controller.abort());
  return controller;
}

/**
 * Pulls the first event before any response byte is sent: errors up to the first upstream token
 * (unknown collection, 429 from admission, backend down) become ordinary JSON errors with a status.
 */
async function firstEvent(events: AsyncGenerator<ChatEvent>): Promise<ChatEvent | undefined> {
  const first = await events.next();
  return first.done ? undefined : first.value;
}

async function writeStreamError(stream: SSEStreamingApi, error: unknown): Promise<void> {
  const appError =
    error instanceof AppError ? error : new AppError("bad_gateway", "the answer was interrupted");
  await stream.writeSSE({
    event: "error",
    data: JSON.stringify({ error: { code: appError.code, message: appError.message } }),
  });
}

type StartEvent = Extract<ChatEvent, { type: "start" }>;
type EndEvent = Extract<ChatEvent, { type: "end" }>;

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

export const feedbackBody = z
  .object({
    message_id: z.string().regex(/^\d{1,18}$/, "a message id from a chat answer"),
    rating: z.enum(["up", "down"]),
    comment: z.string().max(2000).refine(noNul, NO_NUL_MESSAGE).optional(),
  })
  .strict();

export function chatRoutes(
  service: ChatService,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  usage: EventRecorder,
): Hono<AppEnv> {
  const ask = (c: Context<AppEnv>, principal: Principal, request: ChatRequest, abort: AbortController) => {
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

  return new Hono<AppEnv>()
    .post("/v1/feedback", auth("read"), validate("json", feedbackBody), async (c) => {
      const body = c.req.valid("json");
      const principal = c.get("principal");
      await service.assertAnswerExists(principal, body.message_id, readConsistencyToken(c));
      usage.record({
        tenantId: principal.tenantId,
        kind: "feedback",
        requestId: c.get("requestId"),
        httpStatus: 202,
        payload: { message_id: body.message_id, rating: body.rating, comment: body.comment ?? null },
      });
      return c.json({ accepted: true }, 202);
    })
    .post("/v1/chat", auth("read"), validate("json", chatBody), async (c) => {
      const body = c.req.valid("json");
      const abort = clientSignal(c);
      const events = ask(
        c,
        c.get("principal"),
        {
          question: body.question,
          collection: body.collection,
          conversationId: body.conversation_id ?? null,
          persist: true,
          ...(body.mode ? { mode: body.mode } : {}),
          ...(body.k ? { k: body.k } : {}),
          ...(body.filter ? { filter: body.filter } : {}),
        },
        abort,
      );
      const first = await firstEvent(events);
      if (!body.stream) {
        let answer = "";
        let end: Extract<ChatEvent, { type: "end" }> | undefined;
        let start: Extract<ChatEvent, { type: "start" }> | undefined;
        for (let event = first; event; event = await firstEvent(events)) {
          if (event.type === "start") start = event;
          if (event.type === "token") answer += event.text;
          if (event.type === "end") end = event;
        }
        if (end?.token != null) c.header(CONSISTENCY_HEADER, formatLsn(end.token));
        return c.json({
          conversation_id: start?.conversationId ?? null,
          message_id: end?.messageId ?? null,
          answer: end?.answer ?? answer,
          citations: (end?.citations ?? []).map(citationJson),
          usage: end?.usage
            ? { prompt_tokens: end.usage.promptTokens, completion_tokens: end.usage.completionTokens }
            : null,
          model: end?.model ?? null,
          retrieval: start?.retrieval ?? null,
          consistency_token: end?.token != null ? formatLsn(end.token) : null,
        });
      }
      return streamSSE(c, async (stream) => {
        stream.onAbort(() => abort.abort());
        try {
          for (let event = first; event; event = await firstEvent(events)) {
            if (event.type === "start") {
              await stream.writeSSE({
                event: "start",
                data: JSON.stringify({ conversation_id: event.conversationId, retrieval: event.retrieval }),
              });
            } else if (event.type === "token") {
              await stream.writeSSE({ event: "token", data: JSON.stringify({ text: event.text }) });
            } else {
              await stream.writeSSE({
                event: "citations",
                data: JSON.stringify(event.citations.map(citationJson)),
              });
              await stream.writeSSE({
                event: "usage",
                data: JSON.stringify(
                  event.usage
                    ? {
                        prompt_tokens: event.usage.promptTokens,
                        completion_tokens: event.usage.completionTokens,
                      }
                    : null,
                ),
              });
              await stream.writeSSE({
                event: "done",
                data: JSON.stringify({
                  message_id: event.messageId,
                  consistency_token: event.token != null ? formatLsn(event.token) : null,
                }),
              });
            }
          }
        } catch (error) {
          if (!abort.signal.aborted) await writeStreamError(stream, error);
        }
      });
    })
    .get(
      "/v1/conversations/:id",
      auth("read"),
      validate("param", z.object({ id: z.uuid("not a conversation id") })),
      async (c) => {
        const { conversation, messages } = await service.conversation(
          c.get("principal"),
          c.req.valid("param").id,
          readConsistencyToken(c),
        );
        return c.json({
          conversation: {
            id: conversation.id,
            title: conversation.title,
            created_at: conversation.createdAt,
          },
          messages: messages.map((m) => ({
            id: m.id,
            role: m.role,
            content: m.content,
            status: m.status,
            citations: m.citations,
            prompt_tokens: m.promptTokens,
            completion_tokens: m.completionTokens,
            model: m.model,
            created_at: m.createdAt,
          })),
        });
      },
    )
    .post("/v1/chat/completions", auth("read"), validate("json", openAiBody), async (c) => {
      const body = c.req.valid("json");
      const collection = body.collection ?? /^rag:(.+)$/.exec(body.model ?? "")?.[1];
      if (!collection)
        throw new InvalidRequestError(
          'name the collection: "collection" in the body, or model "rag:<collection>"',
        );
      const turns = body.messages.filter((m) => m.role === "user" || m.role === "assistant");
      const last = turns[turns.length - 1];
      if (last?.role !== "user" || !last.content?.trim()) {
        throw new InvalidRequestError(
          "the last message must be a non-empty user message: it is the question",
        );
      }
      // The same bound as /v1/chat's question: the question always goes to the backend whole.
      if (last.content.trim().length > MAX_QUESTION_CHARS) {
        throw new InvalidRequestError(
          `the last user message is the question: at most ${MAX_QUESTION_CHARS} characters, got ${last.content.trim().length}`,
        );
      }
      const abort = clientSignal(c);
      const events = ask(
        c,
        c.get("principal"),
        {
          question: last.content,
          collection,
          history: turns
            .slice(0, -1)
            .map((m) => ({ role: m.role as "user" | "assistant", content: m.content ?? "" })),
          persist: false,
          ...(body.filter ? { filter: body.filter } : {}),
        },
        abort,
      );
      const first = await firstEvent(events);
      const id = `chatcmpl-${crypto.randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      const model = body.model ?? `rag:${collection}`;
      if (!body.stream) {
        let end: Extract<ChatEvent, { type: "end" }> | undefined;
        for (let event = first; event; event = await firstEvent(events))
          if (event.type === "end") end = event;
        return c.json({
          id,
          object: "chat.completion",
          created,
          model,
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: end?.answer ?? "" },
              finish_reason: "stop",
              logprobs: null,
            },
          ],
          usage: end?.usage
            ? {
                prompt_tokens: end.usage.promptTokens,
                completion_tokens: end.usage.completionTokens,
                total_tokens: end.usage.promptTokens + end.usage.completionTokens,
              }
            : null,
          citations: (end?.citations ?? []).map(citationJson),
        });
      }
      return streamSSE(c, async (stream) => {
        stream.onAbort(() => abort.abort());
        const chunk = (delta: object, finish: string | null, extra: object = {}) =>
          JSON.stringify({
            id,
            object: "chat.completion.chunk",
            created,
            model,
            choices: [{ index: 0, delta, finish_reason: finish }],
            ...extra,
          });
        try {
          for (let event = first; event; event = await firstEvent(events)) {
            if (event.type === "start")
              await stream.writeSSE({ data: chunk({ role: "assistant", content: "" }, null) });
            else if (event.type === "token")
              await stream.writeSSE({ data: chunk({ content: event.text }, null) });
            else
              await stream.writeSSE({
                data: chunk({}, "stop", { citations: event.citations.map(citationJson) }),
              });
          }
          await stream.writeSSE({ data: "[DONE]" });
        } catch (error) {
          if (!abort.signal.aborted) await writeStreamError(stream, error);
        }
      });
    });
}
