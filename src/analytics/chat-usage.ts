import type { ChatEvent, ChatRequest } from "../chat/chat.service.ts";
import type { EndEvent, StartEvent } from "../chat/answer-events.ts";
import { httpStatusOf } from "../errors.ts";
import type { Principal } from "../tenancy/principal.ts";
import type { EventRecorder } from "./event-recorder.ts";

/**
 * An answer's events passed through, with one usage event recorded when it ends, however it ends:
 * its status (499 when the caller went away first), latency, retrieval and tokens.
 */
export async function* withChatUsage(
  usage: EventRecorder,
  asked: { readonly principal: Principal; readonly request: ChatRequest; readonly requestId: string },
  chat: AsyncGenerator<ChatEvent>,
): AsyncGenerator<ChatEvent> {
  const started = performance.now();
  let start: StartEvent | undefined;
  let end: EndEvent | undefined;
  let httpStatus = 499;
  try {
    for await (const event of chat) {
      if (event.type === "start") start = event;
      if (event.type === "end") end = event;
      yield event;
    }
    httpStatus = 200;
  } catch (error) {
    httpStatus = httpStatusOf(error);
    throw error;
  } finally {
    const { principal, request, requestId } = asked;
    usage.record({
      tenantId: principal.tenantId,
      kind: "chat",
      requestId,
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
    });
  }
}
