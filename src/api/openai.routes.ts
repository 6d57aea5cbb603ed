import { Hono, type MiddlewareHandler } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import type { EventRecorder } from "../analytics/event-recorder.ts";
import type { ChatService } from "../chat/chat.service.ts";
import { InvalidRequestError } from "../errors.ts";
import { searchFilterSchema } from "../retrieval/filters.ts";
import type { Scope } from "../tenancy/principal.ts";
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

/** /v1/chat/completions: the chat behind OpenAI's request and response shapes, for any OpenAI SDK. */
export function openAiRoutes(
  service: ChatService,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  usage: EventRecorder,
): Hono<AppEnv> {
  const ask = recordedAnswers(service, usage);
  return new Hono<AppEnv>().post("/v1/chat/completions", auth("read"), validate("json", openAiBody), async (c) => {
    const body = c.req.valid("json");
    const collection = body.collection ?? /^rag:(.+)$/.exec(body.model ?? "")?.[1];
    if (!collection)
      throw new InvalidRequestError('name the collection: "collection" in the body, or model "rag:<collection>"');
    const turns = body.messages.filter((m) => m.role === "user" || m.role === "assistant");
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
        for (let event = first; event; event = await nextEvent(events)) {
          if (event.type === "start") await stream.writeSSE({ data: chunk({ role: "assistant", content: "" }, null) });
          else if (event.type === "token") await stream.writeSSE({ data: chunk({ content: event.text }, null) });
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
