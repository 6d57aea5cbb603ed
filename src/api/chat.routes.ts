import { type Context, Hono, type MiddlewareHandler } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import { z } from "zod";
import type { ChatEvent, ChatRequest, ChatService, Citation } from "../chat/chat.service.ts";
import { formatLsn } from "../db/lsn.ts";
import { AppError, InvalidRequestError } from "../errors.ts";
import { searchFilterSchema } from "../retrieval/filters.ts";
import type { Principal, Scope } from "../tenancy/api-keys.ts";
import { CONSISTENCY_HEADER, readConsistencyToken } from "./consistency.ts";
import type { AppEnv } from "./context.ts";
import { NO_NUL_MESSAGE, noNul, validate } from "./validation.ts";

const MAX_QUESTION_CHARS = 8_000;
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
          content: z.union([z.string(), z.null()]),
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

export function chatRoutes(
  service: ChatService,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
): Hono<AppEnv> {
  const ask = (c: Context<AppEnv>, principal: Principal, request: ChatRequest, abort: AbortController) =>
    service.ask(principal, request, readConsistencyToken(c), abort.signal);

  return new Hono<AppEnv>()
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
