import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { Api, Location } from "../api.ts";
import { ApiError } from "../api.ts";
import { Message, Select, useCollectionChoice } from "../controls.tsx";
import { type DeviceSettings, generateOnDevice, loadDeviceSettings, saveDeviceSettings } from "../device.ts";
import { Markdown } from "../markdown.tsx";
import { serverSentEvents } from "../sse.ts";

interface Citation {
  number: number;
  external_id: string;
  title: string | null;
  location: Location;
  text: string;
}

interface Message {
  id: string | null;
  role: "user" | "assistant";
  content: string;
  citations: Citation[];
  feedback?: Rated | null;
  streaming?: boolean;
}

interface Rated {
  rating: "up" | "down";
  comment: string | null;
}

interface ConversationSummary {
  id: string;
  title: string | null;
  updated_at: string;
}

/**
 * Chat with a collection: conversations newest first, follow-up questions in the same conversation,
 * answers streamed and rendered as sanitised Markdown, citations that open their passage with its
 * location, feedback on each answer. Enter sends, Shift+Enter starts a new line, Stop cuts the answer.
 */
export function Chat({ api }: { api: Api }) {
  const { collection, setCollection, options } = useCollectionChoice(api);
  const [conversations, setConversations] = useState<ConversationSummary[]>([]);
  const [conversationId, setConversationId] = useState<string | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [question, setQuestion] = useState("");
  const [opened, setOpened] = useState<Citation | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [token, setToken] = useState<string | null>(null);
  const running = useRef<AbortController | null>(null);
  const [device, setDevice] = useState<DeviceSettings>(loadDeviceSettings);
  const changeDevice = (change: Partial<DeviceSettings>) => {
    const next = { ...device, ...change };
    setDevice(next);
    saveDeviceSettings(next);
  };
  const [busy, setBusy] = useState(false);

  const loadConversations = useCallback(
    async (consistency: string | null = token) => {
      const headers: Record<string, string> = consistency ? { "X-Consistency-Token": consistency } : {};
      const body = await api.request<{ data: ConversationSummary[] }>(
        "GET",
        "/v1/conversations?limit=50",
        undefined,
        headers,
      );
      setConversations(body.data);
    },
    [api, token],
  );
  useEffect(() => {
    // Once, on opening the view: later loads carry the newest answer's token.
    void loadConversations(null);
  }, [api]);

  const open = async (id: string) => {
    setError(null);
    setOpened(null);
    const headers: Record<string, string> = token ? { "X-Consistency-Token": token } : {};
    const body = await api.request<{ messages: Message[] }>("GET", `/v1/conversations/${id}`, undefined, headers);
    setConversationId(id);
    setMessages(
      body.messages.map((m) => ({
        id: m.id,
        role: m.role,
        content: m.content,
        citations: m.citations,
        feedback: m.feedback,
      })),
    );
  };

  /** The platform retrieves and stores; the engine on this machine writes the answer. */
  const askOnDevice = async (
    text: string,
    signal: AbortSignal,
    update: (change: (last: Message) => Message) => void,
  ) => {
    const headers: Record<string, string> = token ? { "X-Consistency-Token": token } : {};
    const prepared = await api.request<{
      conversation_id: string;
      messages: { role: string; content: string }[];
      passages: { chunk_id: string }[];
      max_tokens: number;
      consistency_token: string | null;
    }>("POST", "/v1/chat/prompt", { collection, question: text, conversation_id: conversationId }, headers);
    setConversationId(prepared.conversation_id);
    let answer = "";
    await generateOnDevice(
      device,
      { messages: prepared.messages, maxTokens: prepared.max_tokens },
      (piece) => {
        answer += piece;
        update((last) => ({ ...last, content: answer }));
      },
      signal,
    );
    const stored = await api.request<{ message_id: string; citations: Citation[]; consistency_token: string }>(
      "POST",
      `/v1/conversations/${prepared.conversation_id}/answers`,
      { content: answer, model: device.model, chunk_ids: prepared.passages.map((p) => p.chunk_id) },
      prepared.consistency_token ? { "X-Consistency-Token": prepared.consistency_token } : {},
    );
    update((last) => ({ ...last, id: stored.message_id, citations: stored.citations, streaming: false }));
    setToken(stored.consistency_token);
    await loadConversations(stored.consistency_token);
  };

  const rename = async (conversation: ConversationSummary) => {
    const title = prompt("New title", conversation.title ?? "")?.trim();
    if (!title) return;
    const body = await api.request<{ consistency_token: string }>("PATCH", `/v1/conversations/${conversation.id}`, {
      title,
    });
    setToken(body.consistency_token);
    await loadConversations(body.consistency_token);
  };

  const remove = async (conversation: ConversationSummary) => {
    if (!confirm(`Delete the conversation "${conversation.title ?? ""}" and its messages?`)) return;
    const body = await api.request<{ consistency_token: string }>("DELETE", `/v1/conversations/${conversation.id}`);
    if (conversation.id === conversationId) {
      setConversationId(null);
      setMessages([]);
    }
    setToken(body.consistency_token);
    await loadConversations(body.consistency_token);
  };

  const ask = async () => {
    const text = question.trim();
    if (!text || !collection || busy) return;
    setQuestion("");
    setError(null);
    setBusy(true);
    const controller = new AbortController();
    running.current = controller;
    setMessages((all) => [
      ...all,
      { id: null, role: "user", content: text, citations: [] },
      { id: null, role: "assistant", content: "", citations: [], streaming: true },
    ]);
    const update = (change: (last: Message) => Message) =>
      setMessages((all) => [...all.slice(0, -1), change(all[all.length - 1] as Message)]);
    try {
      if (device.enabled) {
        await askOnDevice(text, controller.signal, update);
        return;
      }
      const response = await fetch("/v1/chat", {
        method: "POST",
        headers: {
          Authorization: `Bearer ${api.key}`,
          "Content-Type": "application/json",
          ...(token ? { "X-Consistency-Token": token } : {}),
        },
        body: JSON.stringify({ collection, question: text, conversation_id: conversationId, stream: true }),
        signal: controller.signal,
      });
      // The API's error, read from this response (a 401 signs out).
      if (!response.ok || !response.body) throw await api.errorOf(response);
      for await (const { event, data } of serverSentEvents(response.body)) {
        const value = JSON.parse(data);
        if (event === "start") setConversationId(value.conversation_id);
        else if (event === "token") update((last) => ({ ...last, content: last.content + value.text }));
        else if (event === "citations") update((last) => ({ ...last, citations: value as Citation[] }));
        else if (event === "done") {
          update((last) => ({ ...last, id: value.message_id, streaming: false }));
          setToken(value.consistency_token);
          await loadConversations(value.consistency_token);
        } else if (event === "error") throw new ApiError(0, value.error?.code ?? "error", value.error?.message ?? data);
      }
    } catch (failure) {
      if (!controller.signal.aborted) setError((failure as Error).message);
    } finally {
      update((last) => ({ ...last, streaming: false }));
      running.current = null;
      setBusy(false);
    }
  };

  return (
    <section class="chat" aria-labelledby="chat-title">
      <aside class="conversations" aria-label="Conversations">
        <button
          type="button"
          onClick={() => {
            setConversationId(null);
            setMessages([]);
            setOpened(null);
          }}
        >
          New conversation
        </button>
        <ul>
          {conversations.map((c) => (
            <li key={c.id}>
              <button
                type="button"
                class={c.id === conversationId ? "link current" : "link"}
                aria-current={c.id === conversationId ? "true" : undefined}
                onClick={() => void open(c.id)}
              >
                {c.title ?? "(untitled)"}
              </button>{" "}
              <button
                type="button"
                class="link dim"
                aria-label={`Rename ${c.title ?? "conversation"}`}
                onClick={() => void rename(c)}
              >
                rename
              </button>{" "}
              <button
                type="button"
                class="link dim"
                aria-label={`Delete ${c.title ?? "conversation"}`}
                onClick={() => void remove(c)}
              >
                delete
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <div class="thread">
        <h1 id="chat-title">Chat</h1>
        <div class="toolbar">
          <Select
            id="chat-collection"
            label="Collection"
            value={collection}
            options={options}
            onChange={setCollection}
          />
        </div>
        <details class="device">
          <summary>Generate on this device{device.enabled ? ` (on: ${device.model})` : ""}</summary>
          <p class="dim">
            The platform only retrieves; an OpenAI-compatible engine on this machine (Ollama, llama.cpp, LM Studio)
            writes the answer, which is stored back into the conversation. It must allow this page's origin (CORS).
          </p>
          <div class="toolbar">
            <input
              id="device-enabled"
              type="checkbox"
              checked={device.enabled}
              onChange={(event) => changeDevice({ enabled: event.currentTarget.checked })}
            />
            <label for="device-enabled">Use the engine on this device</label>
            <label for="device-url">Engine URL</label>
            <input
              id="device-url"
              value={device.url}
              onInput={(event) => changeDevice({ url: event.currentTarget.value })}
            />
            <label for="device-model">Model</label>
            <input
              id="device-model"
              value={device.model}
              onInput={(event) => changeDevice({ model: event.currentTarget.value })}
            />
            <label for="device-key">Engine key (if it needs one)</label>
            <input
              id="device-key"
              type="password"
              value={device.key}
              onInput={(event) => changeDevice({ key: event.currentTarget.value })}
            />
          </div>
        </details>
        <ol class="messages" aria-label="Messages" aria-live="polite">
          {messages.map((m, index) => (
            <li key={index} class={m.role}>
              {m.role === "user" ? <p>{m.content}</p> : <Markdown text={m.content || (m.streaming ? "…" : "")} />}
              {m.citations.length > 0 && (
                <p class="citations">
                  {m.citations.map((c) => (
                    <button
                      type="button"
                      class="secondary"
                      key={c.number}
                      aria-label={`Source ${c.number}: ${c.location.label}`}
                      onClick={() => setOpened(c)}
                    >
                      [{c.number}] {c.location.label}
                    </button>
                  ))}
                </p>
              )}
              {m.role === "assistant" && m.id && !m.streaming && (
                <Feedback api={api} messageId={m.id} given={m.feedback ?? null} token={token} />
              )}
            </li>
          ))}
        </ol>
        {opened && (
          <figure class="source" aria-label="Cited passage">
            <figcaption>
              [{opened.number}] {opened.title ? `${opened.title} — ` : ""}
              {opened.location.label}
            </figcaption>
            <pre class="passage">{opened.text}</pre>
          </figure>
        )}
        <Message kind="alert" text={error} />
        <form
          class="composer"
          onSubmit={(event) => {
            event.preventDefault();
            void ask();
          }}
        >
          <label for="question">Question</label>
          <textarea
            id="question"
            rows={3}
            value={question}
            onInput={(event) => setQuestion(event.currentTarget.value)}
            onKeyDown={(event) => {
              if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
                event.preventDefault();
                void ask();
              }
            }}
          />
          {busy ? (
            <button type="button" class="danger" onClick={() => running.current?.abort()}>
              Stop
            </button>
          ) : (
            <button type="submit" disabled={!collection || question.trim() === ""}>
              Ask
            </button>
          )}
        </form>
      </div>
    </section>
  );
}

/** 👍/👎 on an answer, with an optional comment, stored through the API and shown again with the conversation. */
function Feedback(props: { api: Api; messageId: string; given: Rated | null; token: string | null }) {
  const [given, setGiven] = useState<Rated | null>(props.given);
  const [comment, setComment] = useState("");
  const [error, setError] = useState<string | null>(null);
  const send = async (rating: "up" | "down") => {
    const headers: Record<string, string> = props.token ? { "X-Consistency-Token": props.token } : {};
    try {
      const stored = await props.api.request<Rated>(
        "POST",
        "/v1/feedback",
        { message_id: props.messageId, rating, ...(comment ? { comment } : {}) },
        headers,
      );
      setGiven(stored);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  if (given)
    return (
      <p class="dim" role="status">
        {given.rating === "up" ? "You marked this helpful" : "You marked this not helpful"}
        {given.comment ? `: “${given.comment}”` : "."}
      </p>
    );
  return (
    <div class="feedback">
      <button type="button" class="secondary" aria-label="Helpful" onClick={() => void send("up")}>
        👍
      </button>
      <button type="button" class="secondary" aria-label="Not helpful" onClick={() => void send("down")}>
        👎
      </button>
      <label for={`comment-${props.messageId}`} class="visually-hidden">
        Comment on this answer
      </label>
      <input
        id={`comment-${props.messageId}`}
        placeholder="Comment (optional)"
        value={comment}
        onInput={(event) => setComment(event.currentTarget.value)}
      />
      <Message kind="alert" text={error} />
    </div>
  );
}
