import { z } from "zod";
import { InvalidRequestError } from "../errors.ts";
import type { Priority } from "../inference/admission.ts";
import { collectionName, MAX_QUESTION_CHARS, NO_NUL_MESSAGE, noNul } from "../request-fields.ts";
import { searchFilterSchema } from "../retrieval/filters.ts";
import { citationJson, type EndEvent, usageJson } from "./answer-events.ts";
import type { ChatRequest } from "./chat.service.ts";

/**
 * OpenAI's chat completions in front of the RAG chat: the request schema, its translation into a
 * ChatRequest, and the completion's JSON. /v1/chat/completions and batch chat lines both use it.
 */

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

export const openAiChatBody = z.object({
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

export type OpenAiChatBody = z.infer<typeof openAiChatBody>;

/**
 * The RAG chat request an OpenAI one asks for, and the model name to answer with: the collection
 * from `collection` or model `rag:<collection>`, the last user message as the question, earlier
 * turns as history, system and developer messages as added instructions.
 */
export function chatRequestOf(body: OpenAiChatBody, priority: Priority): { request: ChatRequest; model: string } {
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
  const request: ChatRequest = {
    question: last.content,
    collection,
    history: turns.slice(0, -1).map((m) => ({ role: m.role as "user" | "assistant", content: m.content ?? "" })),
    persist: false,
    priority,
    ...(body.filter ? { filter: body.filter } : {}),
    ...(instructions ? { instructions } : {}),
    ...(maxTokens ? { maxTokens } : {}),
    sampling: {
      ...(body.temperature == null ? {} : { temperature: body.temperature }),
      ...(body.top_p == null ? {} : { topP: body.top_p }),
      ...(body.stop == null ? {} : { stop: typeof body.stop === "string" ? [body.stop] : body.stop }),
      ...(body.seed == null ? {} : { seed: body.seed }),
    },
  };
  return { request, model: body.model ?? `rag:${collection}` };
}

/** A completion's identity: its id, when it was made (Unix seconds) and the model it names. */
export interface CompletionMeta {
  readonly id: string;
  readonly created: number;
  readonly model: string;
}

export function newCompletionMeta(model: string): CompletionMeta {
  return { id: `chatcmpl-${crypto.randomUUID()}`, created: Math.floor(Date.now() / 1000), model };
}

/** A whole (not streamed) completion, with pgrag's citations beside OpenAI's fields. */
export function completionJson(meta: CompletionMeta, end: EndEvent | undefined) {
  return {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
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
  };
}
