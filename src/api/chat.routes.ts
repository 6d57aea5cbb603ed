import { Hono, type MiddlewareHandler } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import type { EventRecorder } from "../analytics/event-recorder.ts";
import type { ChatService } from "../chat/chat.service.ts";
import { formatToken } from "../db/consistency-token.ts";
import { locationJson } from "../retrieval/chunk-location.ts";
import { searchFilterSchema } from "../retrieval/filters.ts";
import { rerankHeader } from "./rerank-outcome.ts";
import type { Scope } from "../tenancy/principal.ts";
import { citationJson, collectAnswer, nextEvent, storedCitationsJson } from "../chat/answer-events.ts";
import { clientSignal, recordedAnswers, writeStreamError } from "./chat-stream.ts";
import { CONSISTENCY_HEADER, readConsistencyToken, setConsistencyToken } from "./consistency.ts";
import type { AppEnv } from "./context.ts";
import { collectionName, NO_NUL_MESSAGE, noNul, question, searchMode } from "../request-fields.ts";
import { validate } from "./validation.ts";
import { documented } from "./route-docs.ts";

const chatBody = z
  .object({
    question,
    collection: collectionName,
    conversation_id: z.uuid("not a conversation id").nullish(),
    stream: z.boolean().default(true),
    mode: searchMode.optional(),
    k: z.number().int().min(1).max(50).optional(),
    filter: searchFilterSchema.optional(),
  })
  .strict();

/** A stored conversation's question, as /v1/chat and /v1/chat/prompt take it. */
function chatRequestOf(body: Omit<z.infer<typeof chatBody>, "stream">) {
  return {
    question: body.question,
    collection: body.collection,
    conversationId: body.conversation_id ?? null,
    persist: true,
    ...(body.mode ? { mode: body.mode } : {}),
    ...(body.k ? { k: body.k } : {}),
    ...(body.filter ? { filter: body.filter } : {}),
  };
}

const conversationParams = z.object({ id: z.uuid("not a conversation id") });

const feedbackBody = z
  .object({
    message_id: z.string().regex(/^\d{1,18}$/, "a message id from a chat answer"),
    rating: z.enum(["up", "down"]),
    comment: z.string().max(2000).refine(noNul, NO_NUL_MESSAGE).optional(),
  })
  .strict();

/** /v1/chat (streamed or whole answers with citations), conversations, and feedback on answers. */
export function chatRoutes(
  service: ChatService,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  usage: EventRecorder,
): Hono<AppEnv> {
  const ask = recordedAnswers(service, usage);
  return new Hono<AppEnv>()
    .post(
      "/v1/feedback",
      documented(
        "Thumbs up or down (and a comment) on an answer: stored on the answer (a later rating replaces it) and counted in the analysts' views",
        { responses: { 200: "Stored" } },
      ),
      auth("read"),
      validate("json", feedbackBody),
      async (c) => {
        const body = c.req.valid("json");
        const principal = c.get("principal");
        const feedback = { rating: body.rating, comment: body.comment ?? null };
        const token = await service.storeFeedback(principal, body.message_id, feedback);
        if (token) c.header(CONSISTENCY_HEADER, formatToken(token));
        usage.record({
          tenantId: principal.tenantId,
          kind: "feedback",
          requestId: c.get("requestId"),
          httpStatus: 200,
          payload: { message_id: body.message_id, ...feedback },
        });
        return c.json({ message_id: body.message_id, ...feedback });
      },
    )
    .post(
      "/v1/chat",
      documented(
        "Ask a question: an answer with citations, streamed as Server-Sent Events (start, token, citations, usage, done) or as JSON",
        {
          consistent: true,
          responses: {
            200: "text/event-stream, or JSON when stream is false",
            502: "The inference backend failed",
            504: "The inference backend was too slow",
          },
        },
      ),
      auth("read"),
      validate("json", chatBody),
      async (c) => {
        const body = c.req.valid("json");
        const abort = clientSignal(c);
        const events = ask(c, c.get("principal"), chatRequestOf(body), abort);
        const first = await nextEvent(events);
        const rerank = first?.type === "start" ? rerankHeader(first.retrieval.rerank) : undefined;
        if (rerank) c.header("X-Rerank", rerank);
        if (!body.stream) {
          const { start, text: answer, end } = await collectAnswer(first, events);
          if (end?.token != null) c.header(CONSISTENCY_HEADER, formatToken(end.token));
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
            consistency_token: end?.token != null ? formatToken(end.token) : null,
          });
        }
        return streamSSE(c, async (stream) => {
          stream.onAbort(() => abort.abort());
          try {
            for (let event = first; event; event = await nextEvent(events)) {
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
                    consistency_token: event.token != null ? formatToken(event.token) : null,
                  }),
                });
              }
            }
          } catch (error) {
            if (!abort.signal.aborted) await writeStreamError(stream, error);
          }
        });
      },
    )
    .get(
      "/v1/conversations",
      documented("The tenant's conversations, most recently active first", {
        consistent: true,
        responses: { 200: "A page of conversations" },
      }),
      auth("read"),
      validate(
        "query",
        z.object({
          after: z.uuid("not a conversation id").optional(),
          limit: z.coerce.number().int().min(1).max(100).default(20),
        }),
      ),
      async (c) => {
        const { after, limit } = c.req.valid("query");
        // One more than asked tells whether there is a next page.
        const found = await service.conversations(
          c.get("principal"),
          { after: after ?? null, limit: limit + 1 },
          readConsistencyToken(c),
        );
        const data = found.slice(0, limit).map((conversation) => ({
          id: conversation.id,
          title: conversation.title,
          messages: conversation.messages,
          created_at: conversation.createdAt,
          updated_at: conversation.updatedAt,
        }));
        return c.json({ data, has_more: found.length > limit, last_id: data.at(-1)?.id ?? null });
      },
    )
    .post(
      "/v1/chat/prompt",
      documented(
        "Retrieval only, for generating on the user's device: the question is stored in its conversation; the prompt's messages and numbered passages come back, and no inference backend is called",
        { consistent: true, responses: { 200: "The prompt, its passages and the conversation" } },
      ),
      auth("read"),
      validate("json", chatBody.omit({ stream: true })),
      async (c) => {
        const body = c.req.valid("json");
        const prepared = await service.prepare(c.get("principal"), chatRequestOf(body), readConsistencyToken(c));
        return c.json({
          conversation_id: prepared.conversationId,
          messages: prepared.prompt.messages,
          passages: prepared.prompt.passages.map((p, i) => ({
            number: i + 1,
            chunk_id: p.chunkId,
            external_id: p.externalId,
            title: p.title,
            location: locationJson(p.location, p.title ?? p.externalId),
            text: p.content,
          })),
          max_tokens: prepared.answerTokens,
          retrieval: prepared.retrieval,
          consistency_token: prepared.token === null ? null : setConsistencyToken(c, prepared.token),
        });
      },
    )
    .post(
      "/v1/conversations/:id/answers",
      documented(
        "Store an answer generated on the user's device for the conversation's last question: its citations are worked out from the passages it names",
        {
          consistent: true,
          responses: { 201: "Stored, with its citations", 409: "No question is waiting for an answer" },
        },
      ),
      auth("read"),
      validate("param", conversationParams),
      validate(
        "json",
        z
          .object({
            content: z.string().min(1).max(200_000).refine(noNul, NO_NUL_MESSAGE),
            model: z.string().trim().min(1).max(200),
            chunk_ids: z.array(z.string().regex(/^\d{1,18}$/, "a chunk id from the prompt's passages")).max(100),
          })
          .strict(),
      ),
      async (c) => {
        const body = c.req.valid("json");
        const principal = c.get("principal");
        const conversationId = c.req.valid("param").id;
        const stored = await service.storeDeviceAnswer(
          principal,
          conversationId,
          { content: body.content, model: body.model, chunkIds: body.chunk_ids },
          readConsistencyToken(c),
        );
        usage.record({
          tenantId: principal.tenantId,
          kind: "chat",
          requestId: c.get("requestId"),
          httpStatus: 201,
          payload: {
            conversation_id: conversationId,
            message_id: stored.messageId,
            model: stored.model,
            results: stored.citations.map((citation) => ({ chunk_id: citation.chunkId, rank: citation.number })),
          },
        });
        return c.json(
          {
            message_id: stored.messageId,
            citations: stored.citations.map(citationJson),
            consistency_token: setConsistencyToken(c, stored.token),
          },
          201,
        );
      },
    )
    .patch(
      "/v1/conversations/:id",
      documented("Rename a conversation", { responses: { 200: "Renamed" } }),
      auth("write"),
      validate("param", conversationParams),
      validate("json", z.object({ title: z.string().trim().min(1).max(200).refine(noNul, NO_NUL_MESSAGE) }).strict()),
      async (c) => {
        const { id } = c.req.valid("param");
        const { title } = c.req.valid("json");
        const token = await service.renameConversation(c.get("principal"), id, title);
        return c.json({ conversation: { id, title }, consistency_token: setConsistencyToken(c, token) });
      },
    )
    .delete(
      "/v1/conversations/:id",
      documented("Delete a conversation and its messages", { responses: { 200: "Deleted" } }),
      auth("write"),
      validate("param", conversationParams),
      async (c) => {
        const token = await service.deleteConversation(c.get("principal"), c.req.valid("param").id);
        return c.json({ deleted: true, consistency_token: setConsistencyToken(c, token) });
      },
    )
    .get(
      "/v1/conversations/:id",
      documented("A conversation's messages", { consistent: true, responses: { 200: "Messages" } }),
      auth("read"),
      validate("param", conversationParams),
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
            citations: storedCitationsJson(m.citations),
            prompt_tokens: m.promptTokens,
            completion_tokens: m.completionTokens,
            model: m.model,
            feedback: m.feedback,
            created_at: m.createdAt,
          })),
        });
      },
    );
}
