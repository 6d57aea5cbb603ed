import { Hono, type MiddlewareHandler } from "hono";
import { streamSSE } from "hono/streaming";
import type { EventRecorder } from "../analytics/event-recorder.ts";
import { citationJson, collectAnswer, nextEvent, usageJson } from "../chat/answer-events.ts";
import type { ChatService } from "../chat/chat.service.ts";
import { chatRequestOf, completionJson, newCompletionMeta, openAiChatBody } from "../chat/openai-chat.ts";
import { NotFoundError } from "../errors.ts";
import type { Principal, Scope } from "../tenancy/principal.ts";
import { clientSignal, recordedAnswers, writeStreamError } from "./chat-stream.ts";
import type { AppEnv } from "./context.ts";
import { validate } from "./validation.ts";
import { documented, pathParameter } from "./route-docs.ts";

/** A model a client may name: `rag:<collection>` (answers from that collection), or the backend's chat model. */
export interface ModelEntry {
  readonly id: string;
  readonly created: Date;
  readonly ownedBy: string;
}

const modelJson = (m: ModelEntry) => ({
  id: m.id,
  object: "model",
  created: Math.floor(m.created.getTime() / 1000),
  owned_by: m.ownedBy,
});

/**
 * /v1/chat/completions and /v1/models: the chat behind OpenAI's request and response shapes, for any
 * OpenAI SDK and for tools that discover models first.
 */
export function openAiRoutes(
  service: ChatService,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  usage: EventRecorder,
  models: (principal: Principal) => Promise<ModelEntry[]>,
): Hono<AppEnv> {
  const ask = recordedAnswers(service, usage);
  return new Hono<AppEnv>()
    .get(
      "/v1/models",
      documented("The models a client may name: rag:<collection> for each collection, and the chat model", {
        responses: { 200: "A list" },
      }),
      auth("read"),
      async (c) => c.json({ object: "list", data: (await models(c.get("principal"))).map(modelJson) }),
    )
    .get(
      "/v1/models/:id",
      documented("One model (an id with a slash is sent URL-encoded)", {
        parameters: [pathParameter("id")],
        responses: { 200: "The model" },
      }),
      auth("read"),
      async (c) => {
        const id = c.req.param("id");
        const found = (await models(c.get("principal"))).find((m) => m.id === id);
        if (!found)
          throw new NotFoundError(`no model "${id}": GET /v1/models lists them (rag:<collection> for each collection)`);
        return c.json(modelJson(found));
      },
    )
    .post(
      "/v1/chat/completions",
      documented("OpenAI-compatible chat completions with retrieval; citations in an extra citations field", {
        responses: {
          200: "An OpenAI chat completion, or its SSE stream",
          502: "The inference backend failed",
          504: "The inference backend was too slow",
        },
      }),
      auth("read"),
      validate("json", openAiChatBody),
      async (c) => {
        const body = c.req.valid("json");
        const { request, model } = chatRequestOf(body, "interactive");
        const abort = clientSignal(c);
        const events = ask(c, c.get("principal"), request, abort);
        const first = await nextEvent(events);
        const meta = newCompletionMeta(model);
        if (!body.stream) {
          const { end } = await collectAnswer(first, events);
          return c.json(completionJson(meta, end));
        }
        return streamSSE(c, async (stream) => {
          stream.onAbort(() => abort.abort());
          const chunk = (delta: object, finish: string | null, extra: object = {}) =>
            JSON.stringify({
              id: meta.id,
              object: "chat.completion.chunk",
              created: meta.created,
              model: meta.model,
              choices: [{ index: 0, delta, finish_reason: finish }],
              ...extra,
            });
          try {
            for (let event = first; event; event = await nextEvent(events)) {
              if (event.type === "start")
                await stream.writeSSE({ data: chunk({ role: "assistant", content: "" }, null) });
              else if (event.type === "token") await stream.writeSSE({ data: chunk({ content: event.text }, null) });
              else {
                await stream.writeSSE({
                  data: chunk({}, event.finishReason, { citations: event.citations.map(citationJson) }),
                });
                // As OpenAI does: one more chunk, with no choices, carrying the usage.
                if (body.stream_options?.include_usage) {
                  await stream.writeSSE({
                    data: JSON.stringify({
                      id: meta.id,
                      object: "chat.completion.chunk",
                      created: meta.created,
                      model: meta.model,
                      choices: [],
                      usage: usageJson(event.usage),
                    }),
                  });
                }
              }
            }
            await stream.writeSSE({ data: "[DONE]" });
          } catch (error) {
            if (!abort.signal.aborted) await writeStreamError(stream, error);
          }
        });
      },
    );
}
