import { Hono, type MiddlewareHandler } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import type { EventRecorder } from "../analytics/event-recorder.ts";
import type { ChatService } from "../chat/chat.service.ts";
import type { ChatUsage } from "../inference/chat-client.ts";
import { InvalidRequestError, NotFoundError } from "../errors.ts";
import { searchFilterSchema } from "../retrieval/filters.ts";
import type { Principal, Scope } from "../tenancy/principal.ts";
import {
  citationJson,
  clientSignal,
  collectAnswer,
  nextEvent,
  recordedAnswers,
  writeStreamError,
} from "./chat-stream.ts";
import type { AppEnv } from "./context.ts";
import { collectionName, MAX_QUESTION_CHARS } from "./request-fields.ts";
import { NO_NUL_MESSAGE, noNul, validate } from "./validation.ts";

/** An OpenAI-style history message (a previous answer may be long); the prompt keeps what fits its budget. */
const MAX_MESSAGE_CHARS = 32_000;
/** The caller's system (and developer) messages together: instructions, not a second context. */
const MAX_INSTRUCTIONS_CHARS = 4_000;

const messageText = z
  .string()
  .max(MAX_MESSAGE_CHARS, `at most ${MAX_MESSAGE_CHARS} characters`)
  .refine(noNul, NO_NUL_MESSAGE);

/** A message's content: a string, or OpenAI's content parts, of which text parts are taken. */
const messageContent = z.union(
  [
    messageText,
    z.null(),
    z
      .array(z.object({ type: z.literal("text"), text: messageText }).loose())
      .max(100)
      .transform((parts) => parts.map((p) => p.text).join("\n")),
  ],
  {
    error:
      'must be a string or an array of text parts ({"type": "text", "text": "…"}): images, audio and files are not taken',
  },
);

export const openAiBody = z.object({
  model: z.string().max(200).optional(),
  messages: z
    .array(
      z
        .object({
          role: z.enum(["system", "user", "assistant", "developer"]),
          content: messageContent,
        })
        .loose(),
    )
    .min(1, "messages must not be empty")
    .max(200),
  stream: z.boolean().default(false),
  stream_options: z.object({ include_usage: z.boolean().optional() }).loose().nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  stop: z.union([z.string().min(1).max(200), z.array(z.string().min(1).max(200)).max(4)]).nullish(),
  seed: z.number().int().nullish(),
  /** pgrag's extra: the collection to retrieve from (or use model "rag:<collection>"). */
  collection: collectionName.optional(),
  filter: searchFilterSchema.optional(),
});

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
    .get("/v1/models", auth("read"), async (c) =>
      c.json({ object: "list", data: (await models(c.get("principal"))).map(modelJson) }),
    )
    .get("/v1/models/:id", auth("read"), async (c) => {
      const id = c.req.param("id");
      const found = (await models(c.get("principal"))).find((m) => m.id === id);
      if (!found)
        throw new NotFoundError(`no model "${id}": GET /v1/models lists them (rag:<collection> for each collection)`);
      return c.json(modelJson(found));
    })
    .post("/v1/chat/completions", auth("read"), validate("json", openAiBody), async (c) => {
      const body = c.req.valid("json");
      const collection = body.collection ?? /^rag:(.+)$/.exec(body.model ?? "")?.[1];
      if (!collection)
        throw new InvalidRequestError('name the collection: "collection" in the body, or model "rag:<collection>"');
      const turns = body.messages.filter((m) => m.role === "user" || m.role === "assistant");
      const instructions = body.messages
        .filter((m) => m.role === "system" || m.role === "developer")
        .map((m) => m.content?.trim() ?? "")
        .filter(Boolean)
        .join("\n");
      if (instructions.length > MAX_INSTRUCTIONS_CHARS) {
        throw new InvalidRequestError(
          `system messages are instructions added to the retrieval prompt: at most ${MAX_INSTRUCTIONS_CHARS} characters together, got ${instructions.length}`,
        );
      }
      const last = turns[turns.length - 1];
      if (last?.role !== "user" || !last.content?.trim()) {
        throw new InvalidRequestError("the last message must be a non-empty user message: it is the question");
      }
      // The same bound as /v1/chat's question: the question always goes to the backend whole.
      if (last.content.trim().length > MAX_QUESTION_CHARS) {
        throw new InvalidRequestError(
          `the last user message is the question: at most ${MAX_QUESTION_CHARS} characters, got ${last.content.trim().length}`,
        );
      }
      const maxTokens = body.max_completion_tokens ?? body.max_tokens;
      const abort = clientSignal(c);
      const events = ask(
        c,
        c.get("principal"),
        {
          question: last.content,
          collection,
          history: turns.slice(0, -1).map((m) => ({ role: m.role as "user" | "assistant", content: m.content ?? "" })),
          persist: false,
          priority: c.get("priority") ?? "interactive",
          ...(body.filter ? { filter: body.filter } : {}),
          ...(instructions ? { instructions } : {}),
          ...(maxTokens ? { maxTokens } : {}),
          sampling: {
            ...(body.temperature == null ? {} : { temperature: body.temperature }),
            ...(body.top_p == null ? {} : { topP: body.top_p }),
            ...(body.stop == null ? {} : { stop: typeof body.stop === "string" ? [body.stop] : body.stop }),
            ...(body.seed == null ? {} : { seed: body.seed }),
          },
        },
        abort,
      );
      const first = await nextEvent(events);
      const id = `chatcmpl-${crypto.randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      const model = body.model ?? `rag:${collection}`;
      if (!body.stream) {
        const { end } = await collectAnswer(first, events);
        return c.json({
          id,
          object: "chat.completion",
          created,
          model,
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: end?.answer ?? "" },
              finish_reason: end?.finishReason ?? "stop",
              logprobs: null,
            },
          ],
          usage: usageJson(end?.usage ?? null),
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
                    id,
                    object: "chat.completion.chunk",
                    created,
                    model,
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
    });
}

function usageJson(usage: ChatUsage | null) {
  return usage
    ? {
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        total_tokens: usage.promptTokens + usage.completionTokens,
      }
    : null;
}
