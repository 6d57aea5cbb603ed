import type { ChunkLocation } from "../retrieval/chunk-location.ts";
import { type Kysely, sql } from "kysely";
import { LRUCache } from "lru-cache";
import type { Config } from "../config.ts";
import type { Database } from "../db/database.ts";
import { type ConsistencyToken, laterToken } from "../db/consistency-token.ts";
import type { Router } from "../db/router.ts";
import { AppError, NotFoundError } from "../errors.ts";
import type { Priority } from "../inference/admission.ts";
import type { ChatClient, ChatMessage, ChatUsage, FinishReason, Sampling } from "../inference/chat-client.ts";
import { upstreamError } from "../inference/upstream-error.ts";
import type { SearchFilter } from "../retrieval/filters.ts";
import type { ChunkDetails } from "../retrieval/search.repository.ts";
import type { RerankOutcome, SearchMode, SearchService } from "../retrieval/search.service.ts";
import { type Principal, readerOf } from "../tenancy/principal.ts";
import { estimateTokens } from "../text/token-estimate.ts";
import {
  conversationsStartedToday,
  deleteConversation,
  storeFeedback,
  type AnswerFeedback,
  findConversation,
  insertConversation,
  insertMessage,
  listConversations,
  listMessages,
  lockForAnswer,
  renameConversation,
} from "./conversations.repository.ts";
import { assemblePrompt, type ContextPassage, citedPassages } from "./prompt.ts";

export interface ChatRequest {
  readonly question: string;
  readonly collection: string;
  /** Continue this conversation; a new one is created when absent (and `persist` is on). */
  readonly conversationId?: string | null;
  /** Earlier turns given by the caller instead of a stored conversation (the OpenAI facade). */
  readonly history?: readonly ChatMessage[];
  /** Store the question and answer in a conversation. */
  readonly persist: boolean;
  readonly mode?: SearchMode;
  readonly k?: number;
  readonly filter?: SearchFilter;
  /** The inference scheduler's class: batch lines wait for capacity interactive chat leaves free. */
  readonly priority?: Priority;
  /** The caller's own instructions (an OpenAI client's system messages), added to the RAG ones. */
  readonly instructions?: string;
  /** The answer's length in tokens, at most the configured maximum (which is the default). */
  readonly maxTokens?: number;
  readonly sampling?: Sampling;
}

export interface Citation {
  readonly number: number;
  readonly chunkId: string;
  readonly documentId: string;
  readonly externalId: string;
  readonly title: string | null;
  readonly location: ChunkLocation;
  readonly charStart: number;
  readonly charEnd: number;
  readonly text: string;
}

export type ChatEvent =
  | {
      type: "start";
      conversationId: string | null;
      retrieval: {
        mode: SearchMode;
        servedBy: string;
        passages: number;
        timingsMs: Record<string, number>;
        rerank: RerankOutcome;
      };
    }
  | { type: "token"; text: string }
  | {
      type: "end";
      answer: string;
      citations: Citation[];
      usage: ChatUsage | null;
      /** "length" when the answer reached its token limit. */
      finishReason: FinishReason;
      messageId: string | null;
      token: ConsistencyToken | null;
      model: string;
    };

const DEFAULT_K = 8;

/** How a stored answer's model says it was generated on the user's device, not by the platform's backend. */
export const DEVICE_MODEL_PREFIX = "on-device:";

function passageOf(chunk: ChunkDetails): ContextPassage {
  return { ...chunk, chunkId: chunk.id };
}

/** The passages an answer cites by their "[n]" markers. */
function citationsOf(answer: string, passages: readonly ContextPassage[]): Citation[] {
  return citedPassages(answer, passages).map(({ number, passage }) => ({
    number,
    chunkId: passage.chunkId,
    documentId: passage.documentId,
    externalId: passage.externalId,
    title: passage.title,
    location: passage.location,
    charStart: passage.charStart,
    charEnd: passage.charEnd,
    text: passage.content,
  }));
}

/**
 * Retrieval-augmented chat. The question is stored on the primary first, so it survives a failing
 * backend; retrieval and history reads carry the consistency token of that write (a follow-up always
 * sees the previous turn); the answer, partial or whole, is stored with its citations and usage.
 */
export class ChatService {
  readonly #router: Router;
  readonly #search: SearchService;
  readonly #chat: ChatClient;
  readonly #options: Config["chat"];
  /** Each conversation's last write, so a follow-up is consistent even without the client's token. */
  readonly #conversationTokens = new LRUCache<string, ConsistencyToken>({ max: 50_000 });

  constructor(router: Router, search: SearchService, chat: ChatClient, options: Config["chat"]) {
    this.#router = router;
    this.#search = search;
    this.#chat = chat;
    this.#options = options;
  }

  /**
   * Everything an answer needs but the model: the question stored in its conversation, retrieval,
   * and the prompt (its messages and numbered passages). `ask` continues with the inference
   * backend; a client that generates on its own device takes the prompt and stores its answer back
   * (`storeDeviceAnswer`).
   */
  async prepare(principal: Principal, request: ChatRequest, clientToken: ConsistencyToken | null) {
    const mode = request.mode ?? "hybrid";
    // Storing the question (primary) and retrieval (replica) are independent: they run together.
    // Retrieval carries the client's token — what it wrote to the collection — not the question's,
    // which only the conversation history needs.
    const [{ conversationId, history, token }, found] = await Promise.all([
      this.#recordQuestion(principal, request, clientToken),
      this.#search.search(
        principal,
        {
          query: request.question,
          collections: [request.collection],
          mode,
          k: request.k ?? DEFAULT_K,
          ...(request.filter ? { filter: request.filter } : {}),
        },
        clientToken,
      ),
    ]);
    const ranked: ContextPassage[] = found.hits.map((h) => passageOf(h.chunk));
    const answerTokens = Math.min(request.maxTokens ?? this.#options.maxAnswerTokens, this.#options.maxAnswerTokens);
    const prompt = assemblePrompt(
      request.question,
      history,
      ranked,
      { contextTokens: this.#options.contextTokens, answerTokens },
      request.instructions,
    );
    const retrieval = {
      mode,
      servedBy: found.node,
      passages: prompt.passages.length,
      timingsMs: found.timings,
      rerank: found.rerank,
    };
    return { conversationId, token, prompt, answerTokens, retrieval };
  }

  /**
   * Stores an answer generated on the user's device for the conversation's waiting question: its
   * citations are worked out here, from the passages the prompt numbered (read again, the tenant's
   * own only), and the model is recorded as the device's, so history and feedback see it (and the
   * analysts' views, through the usage event the route records).
   */
  async storeDeviceAnswer(
    principal: Principal,
    conversationId: string,
    answer: { content: string; model: string; chunkIds: readonly string[] },
    clientToken: ConsistencyToken | null,
  ) {
    const token = this.#latestToken(conversationId, clientToken);
    const chunks = await this.#search.chunks(principal, answer.chunkIds, token);
    const passages = answer.chunkIds.flatMap((id) => {
      const chunk = chunks.get(id);
      return chunk ? [passageOf(chunk)] : [];
    });
    const citations = citationsOf(answer.content, passages);
    const model = `${DEVICE_MODEL_PREFIX}${answer.model}`;
    // One answer a question: checked and written under the conversation's lock.
    const { value: messageId, token: written } = await this.#router.write(readerOf(principal), async (tx) => {
      const state = await lockForAnswer(tx, { tenantId: principal.tenantId, id: conversationId });
      if (state === "missing") throw new NotFoundError(`no conversation ${conversationId}`);
      if (state === "answered") {
        throw new AppError(
          "conflict",
          `conversation ${conversationId} has no question waiting for an answer: ask first`,
        );
      }
      return insertMessage(tx, {
        tenantId: principal.tenantId,
        conversationId,
        role: "assistant",
        content: answer.content,
        status: "complete",
        citations,
        promptTokens: null,
        completionTokens: null,
        model,
      });
    });
    this.#conversationTokens.set(conversationId, written);
    return { messageId, token: written, citations, model };
  }

  async *ask(
    principal: Principal,
    request: ChatRequest,
    clientToken: ConsistencyToken | null,
    signal: AbortSignal,
  ): AsyncGenerator<ChatEvent> {
    const chat = this.#chat;
    const { conversationId, token, prompt, answerTokens, retrieval } = await this.prepare(
      principal,
      request,
      clientToken,
    );
    let answer = "";
    let usage: ChatUsage | null = null;
    let finishReason: FinishReason = "stop";
    const upstream = chat.stream(prompt.messages, {
      maxTokens: answerTokens,
      sampling: request.sampling,
      signal,
      tenantId: principal.tenantId,
      priority: request.priority,
    });
    try {
      // The first delta is awaited before "start": admission (429) and an unreachable backend (502)
      // then fail the request before any response byte, with a proper HTTP status.
      let next = await upstream.next();
      yield { type: "start", conversationId, retrieval };
      for (; !next.done; next = await upstream.next()) {
        const delta = next.value;
        if (delta.type === "usage") {
          usage = delta.usage;
        } else if (delta.type === "finish") {
          finishReason = delta.reason;
        } else {
          answer += delta.text;
          yield { type: "token", text: delta.text };
        }
      }
    } catch (error) {
      // Keep what was said: the question is stored already, the partial answer is stored now.
      if (conversationId) {
        await this.#recordAnswer(principal, conversationId, {
          content: answer,
          status: answer ? "partial" : "failed",
          citations: [],
          usage,
          model: chat.model,
        }).catch(() => undefined);
      }
      // Tell the client where its question (and any partial answer) was kept.
      const failure = upstreamError(error);
      throw new AppError(failure.code, failure.message, {
        cause: error,
        details: { conversation_id: conversationId, partial_answer: answer || null },
        ...(failure.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: failure.retryAfterSeconds }),
      });
    }
    // A backend that reports no usage gets it estimated, so that every answer carries it.
    usage ??= {
      promptTokens: prompt.messages.reduce((n, m) => n + estimateTokens(m.content), 0),
      completionTokens: estimateTokens(answer),
    };
    const citations = citationsOf(answer, prompt.passages);
    const saved = conversationId
      ? await this.#recordAnswer(principal, conversationId, {
          content: answer,
          status: "complete",
          citations,
          usage,
          model: chat.model,
        })
      : null;
    yield {
      type: "end",
      answer,
      citations,
      usage,
      finishReason,
      messageId: saved?.messageId ?? null,
      token: saved?.token ?? token,
      model: chat.model,
    };
  }

  /** The principal's tenant's conversations, most recently active first. */
  async conversations(
    principal: Principal,
    page: { after: string | null; limit: number },
    clientToken: ConsistencyToken | null,
  ) {
    return (
      await this.#router.read({ token: clientToken, ...readerOf(principal) }, (db) =>
        listConversations(db, principal.tenantId, page),
      )
    ).value;
  }

  async conversation(principal: Principal, conversationId: string, clientToken: ConsistencyToken | null) {
    const token = this.#latestToken(conversationId, clientToken);
    const { value } = await this.#router.read({ token, ...readerOf(principal) }, async (db) => {
      const conversation = await findConversation(db, principal.tenantId, conversationId);
      return conversation && { conversation, messages: await listMessages(db, principal.tenantId, conversationId) };
    });
    if (!value) throw new NotFoundError(`no conversation ${conversationId}`);
    return value;
  }

  async renameConversation(principal: Principal, conversationId: string, title: string) {
    const { value, token } = await this.#router.write(readerOf(principal), (tx) =>
      renameConversation(tx, { tenantId: principal.tenantId, id: conversationId }, title),
    );
    if (!value) throw new NotFoundError(`no conversation ${conversationId}`);
    return token;
  }

  /** Deletes a conversation and its messages (the usage events that recorded them stay, as analytics). */
  async deleteConversation(principal: Principal, conversationId: string) {
    const { value, token } = await this.#router.write(readerOf(principal), (tx) =>
      deleteConversation(tx, { tenantId: principal.tenantId, id: conversationId }),
    );
    if (!value) throw new NotFoundError(`no conversation ${conversationId}`);
    return token;
  }

  /** Stores feedback on an answer of the caller's own tenant, read back with its conversation. */
  async storeFeedback(
    principal: Principal,
    messageId: string,
    feedback: AnswerFeedback,
  ): Promise<ConsistencyToken | null> {
    const { value, token } = await this.#router.write(readerOf(principal), (tx) =>
      storeFeedback(tx, principal.tenantId, messageId, feedback),
    );
    if (!value) throw new NotFoundError(`no answer with message id ${messageId}`);
    return token;
  }

  async #recordQuestion(principal: Principal, request: ChatRequest, clientToken: ConsistencyToken | null) {
    let history: ChatMessage[] = [...(request.history ?? [])];
    if (request.conversationId) {
      const stored = await this.conversation(principal, request.conversationId, clientToken);
      history = stored.messages
        .filter((m) => m.content && (m.role === "user" || m.role === "assistant"))
        .map((m) => ({ role: m.role, content: m.content }));
    }
    if (!request.persist) return { conversationId: null, history, token: clientToken };
    const { value: conversationId, token } = await this.#router.write(readerOf(principal), async (tx) => {
      if (!request.conversationId) await this.#assertConversationQuota(tx, principal);
      const id =
        request.conversationId ??
        (await insertConversation(tx, {
          tenantId: principal.tenantId,
          collectionName: request.collection,
          title: request.question,
        }));
      if (!id) throw new NotFoundError(`no collection "${request.collection}"`);
      await insertMessage(tx, {
        tenantId: principal.tenantId,
        conversationId: id,
        role: "user",
        content: request.question,
      });
      return id;
    });
    this.#conversationTokens.set(conversationId, token);
    return { conversationId, history, token };
  }

  /** A read key may start conversations: how many a tenant may start a day is bounded. */
  /** The quota is the tenant's: counted over every owner's conversations, the requester's own view restored after. */
  async #assertConversationQuota(tx: Kysely<Database>, principal: Principal): Promise<void> {
    const quota = this.#options.maxConversationsPerDay;
    await sql`SELECT set_config('pgrag.owner', '', true)`.execute(tx);
    const started = await conversationsStartedToday(tx, principal.tenantId, quota);
    if (principal.owner) await sql`SELECT set_config('pgrag.owner', ${principal.owner}, true)`.execute(tx);
    if (started < quota) return;
    throw new AppError(
      "rate_limited",
      `this tenant started ${quota} conversations in the last day, its quota (PGRAG_MAX_CONVERSATIONS_PER_DAY): continue one with conversation_id, or use /v1/chat/completions, which stores none`,
      { retryAfterSeconds: 3600 },
    );
  }

  async #recordAnswer(
    principal: Principal,
    conversationId: string,
    answer: {
      content: string;
      status: "complete" | "partial" | "failed";
      citations: Citation[];
      usage: ChatUsage | null;
      model: string;
    },
  ) {
    const { value: messageId, token } = await this.#router.write(readerOf(principal), (tx) =>
      insertMessage(tx, {
        tenantId: principal.tenantId,
        conversationId,
        role: "assistant",
        content: answer.content,
        status: answer.status,
        citations: answer.citations,
        promptTokens: answer.usage?.promptTokens ?? null,
        completionTokens: answer.usage?.completionTokens ?? null,
        model: answer.model,
      }),
    );
    this.#conversationTokens.set(conversationId, token);
    return { messageId, token };
  }

  #latestToken(conversationId: string, clientToken: ConsistencyToken | null): ConsistencyToken | null {
    const known = this.#conversationTokens.get(conversationId) ?? null;
    if (known === null) return clientToken;
    if (clientToken === null) return known;
    return laterToken(known, clientToken);
  }
}
