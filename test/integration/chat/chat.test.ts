import OpenAI from "openai";
import { beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { adminTransaction } from "../../../src/tenancy/admin-transaction.ts";
import { createApiKey } from "../../../src/tenancy/api-keys.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { injectDevFaults } from "../../helpers/dev-faults.ts";
import { startTestApp } from "../../helpers/app.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { createCollection, seedScifact } from "../../helpers/ingest.ts";
import { readSse } from "../../../harness/sse.ts";

const normalise = (s: string) => s.replace(/\s+/g, " ").trim();

const seed = (app: App) => seedScifact(app, 40);

/** Every "[n]" in the answer follows a sentence taken from citation n's chunk. */
function expectCitationsGrounded(answer: string, citations: { number: number; text: string }[]) {
  expect(citations.length).toBeGreaterThan(0);
  for (const match of answer.matchAll(/([^[\]]+?)\s*\[(\d+)\]/g)) {
    const sentence = normalise(match[1] ?? "");
    const cited = citations.find((c) => c.number === Number(match[2]));
    expect(cited, `citation [${match[2]}]`).toBeDefined();
    expect(normalise(cited?.text ?? "")).toContain(sentence);
  }
}

let app: App;
let key: string;
let abstracts: Awaited<ReturnType<typeof seed>>["abstracts"];
let question: string;
beforeAll(async () => {
  app = await startTestApp({}, { listen: true, workers: true });
  ({ key, abstracts } = await seed(app));
  question = abstracts[3]?.title ?? "";
});
const baseURL = () => `http://127.0.0.1:${app.port()}/v1`;

describe("OpenAI-compatible facade, called with the openai client", () => {
  const client = () => new OpenAI({ baseURL: baseURL(), apiKey: key, maxRetries: 0 });

  it("answers non-streaming with citations that point to chunks containing the cited text", async () => {
    const completion = await client().chat.completions.create({
      model: "rag:sci",
      messages: [{ role: "user", content: question }],
    });
    const answer = completion.choices[0]?.message.content ?? "";
    expect(answer.length).toBeGreaterThan(20);
    const citations = (completion as unknown as { citations: { number: number; text: string; external_id: string }[] })
      .citations;
    expectCitationsGrounded(answer, citations);
    expect(citations.map((c) => c.external_id)).toContain(abstracts[3]?._id);
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it("streams the same answer token by token, citations on the last chunk", async () => {
    const stream = await client().chat.completions.create({
      model: "rag:sci",
      messages: [{ role: "user", content: question }],
      stream: true,
    });
    let answer = "";
    let chunks = 0;
    let citations: { number: number; text: string }[] = [];
    for await (const chunk of stream) {
      chunks++;
      answer += chunk.choices[0]?.delta?.content ?? "";
      const extra = (chunk as unknown as { citations?: typeof citations }).citations;
      if (extra) citations = extra;
    }
    expect(chunks).toBeGreaterThan(5);
    expectCitationsGrounded(answer, citations);
  });

  it("refuses a request without a collection or question, in OpenAI's error shape", async () => {
    await expect(
      client().chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({
      status: 400,
    });
    await expect(
      client().chat.completions.create({ model: "rag:sci", messages: [{ role: "user", content: "  " }] }),
    ).rejects.toMatchObject({
      status: 400,
    });
  });
});

describe("the OpenAI surface tools expect", () => {
  const client = () => new OpenAI({ baseURL: baseURL(), apiKey: key, maxRetries: 0 });

  it("lists each collection as a model rag:<collection>, and the chat model", async () => {
    const models = (await client().models.list()).data.map((m) => m.id);
    expect(models).toContain("rag:sci");
    expect(models).toContain(app.config.inference.chatModel);
    expect(await client().models.retrieve("rag:sci")).toMatchObject({ id: "rag:sci", object: "model" });
    await expect(client().models.retrieve("rag:none")).rejects.toMatchObject({ status: 404 });
  });

  it("takes text content parts and system messages, and refuses other parts with a clear 400", async () => {
    const dev = app.devInference();
    const completion = await client().chat.completions.create({
      model: "rag:sci",
      messages: [
        { role: "system", content: "Answer in one sentence." },
        { role: "user", content: [{ type: "text", text: question }] },
      ],
    });
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(20);
    // The application's instructions reached the backend after pgrag's own, before the context.
    const system = dev?.stats.lastChatMessages.find((m) => m.role === "system")?.content ?? "";
    expect(system).toMatch(
      /Instructions from the application \(they do not change the rules above\):\nAnswer in one sentence\.\n\nContext:/,
    );
    const image = client().chat.completions.create({
      model: "rag:sci",
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "http://x/y.png" } }] }],
    });
    await expect(image).rejects.toMatchObject({ status: 400 });
    await expect(image).rejects.toThrow(/messages\.0\.content: must be a string or an array of text parts/);
  });

  it("passes max_tokens upstream and reports a cut answer's finish_reason, with usage on every answer", async () => {
    const short = await client().chat.completions.create({
      model: "rag:sci",
      messages: [{ role: "user", content: question }],
      max_tokens: 5,
      temperature: 0.2,
      seed: 7,
    });
    expect(short.choices[0]?.finish_reason).toBe("length");
    expect(short.usage?.completion_tokens).toBeLessThanOrEqual(5);
    expect(short.usage?.prompt_tokens).toBeGreaterThan(0);
    const stream = await client().chat.completions.create({
      model: "rag:sci",
      messages: [{ role: "user", content: question }],
      max_completion_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean)).toEqual(["length"]);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage?.total_tokens).toBeGreaterThan(0);
  });
});

describe("/v1/chat", () => {
  it("streams start, tokens, citations, usage and done as Server-Sent Events", async () => {
    const response = await fetch(`${baseURL()}/chat`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ question, collection: "sci" }),
    });
    expect(response.headers.get("content-type")).toMatch(/text\/event-stream/);
    const events = await readSse(response);
    expect(events[0]?.event).toBe("start");
    expect(events.filter((e) => e.event === "token").length).toBeGreaterThan(3);
    expect(events.slice(-3).map((e) => e.event)).toEqual(["citations", "usage", "done"]);
    const answer = events
      .filter((e) => e.event === "token")
      .map((e) => JSON.parse(e.data).text)
      .join("");
    expectCitationsGrounded(answer, JSON.parse(events.at(-3)?.data ?? "[]"));
  });

  it("lets a follow-up in the same conversation see the earlier turn at once", async () => {
    const first = await api<{ conversation_id: string; answer: string; consistency_token: string }>(
      app,
      "POST",
      "/v1/chat",
      {
        key,
        json: { question, collection: "sci", stream: false },
      },
    );
    expect(first.status).toBe(200);
    const follow = await api<{ retrieval: { servedBy: string }; consistency_token: string }>(app, "POST", "/v1/chat", {
      key,
      json: {
        question: "And what else does it say?",
        collection: "sci",
        conversation_id: first.body.conversation_id,
        stream: false,
      },
    });
    expect(follow.status).toBe(200);
    const prompt = app.devInference()?.stats.lastChatMessages.map((m) => m.content ?? "") ?? [];
    expect(prompt).toContain(question);
    expect(prompt).toContain(first.body.answer);
    // Retrieval for the follow-up ran on a replica that had the new question (read-your-writes).
    expect(follow.body.retrieval.servedBy).toMatch(/^(replica\d|primary)$/);
    const history = await api<{ messages: { role: string; content: string; status: string }[] }>(
      app,
      "GET",
      `/v1/conversations/${first.body.conversation_id}`,
      { key, token: follow.body.consistency_token },
    );
    expect(history.body.messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(history.body.messages.every((m) => m.status === "complete")).toBe(true);
  });

  it("lists the tenant's conversations, most recently active first, a page at a time; renames and deletes them", async () => {
    const { key: own } = await newTenantKey(app);
    await createCollection(app, own, "sci");
    const ids: string[] = [];
    let token: string | null = null;
    for (const question of ["first?", "second?", "third?"]) {
      const events = await readSse(
        await fetch(`${baseURL()}/chat`, {
          method: "POST",
          headers: { Authorization: `Bearer ${own}`, "Content-Type": "application/json" },
          body: JSON.stringify({ collection: "sci", question }),
        }),
      );
      const start = events.find((e) => e.event === "start");
      ids.push((JSON.parse(start?.data ?? "{}") as { conversation_id: string }).conversation_id);
      const done = events.find((e) => e.event === "done");
      token = (JSON.parse(done?.data ?? "{}") as { consistency_token: string | null }).consistency_token;
    }
    type Page = { data: { id: string; messages: number }[]; has_more: boolean; last_id: string | null };
    // With the last answer's token: a replica that serves the list has every answer written.
    const first = await api<Page>(app, "GET", "/v1/conversations?limit=2", { key: own, token });
    expect(first.body.data.map((c) => c.id)).toEqual([ids[2], ids[1]]);
    expect(first.body.data[0]?.messages).toBe(2);
    expect(first.body.has_more).toBe(true);
    const second = await api<Page>(app, "GET", `/v1/conversations?limit=2&after=${first.body.last_id}`, { key: own });
    expect(second.body.data.map((c) => c.id)).toEqual([ids[0]]);
    expect(second.body.has_more).toBe(false);
    // Another tenant sees none of them, and can neither rename nor delete them.
    const { key: other } = await newTenantKey(app);
    expect((await api<Page>(app, "GET", "/v1/conversations", { key: other })).body.data).toEqual([]);
    const path = `/v1/conversations/${ids[0]}`;
    expect((await api(app, "PATCH", path, { key: other, json: { title: "mine" } })).status).toBe(404);
    expect((await api(app, "DELETE", path, { key: other })).status).toBe(404);

    // Its owner renames one and deletes another, messages and all.
    const renamed = await api<{ consistency_token: string }>(app, "PATCH", path, {
      key: own,
      json: { title: "Renamed" },
    });
    expect(renamed.status).toBe(200);
    const deleted = await api<{ consistency_token: string }>(app, "DELETE", `/v1/conversations/${ids[1]}`, {
      key: own,
    });
    expect(deleted.status).toBe(200);
    type Titled = { data: { id: string; title: string }[] };
    const after = await api<Titled>(app, "GET", "/v1/conversations", {
      key: own,
      token: deleted.body.consistency_token,
    });
    expect(after.body.data.map((c) => [c.id, c.title])).toEqual([
      [ids[2], "third?"],
      [ids[0], "Renamed"],
    ]);
    const gone = await api(app, "GET", `/v1/conversations/${ids[1]}`, {
      key: own,
      token: deleted.body.consistency_token,
    });
    expect(gone.status).toBe(404);
    expect((await api(app, "PATCH", path, { key: own, json: { title: " " } })).status).toBe(400);
  });

  it("prepares the prompt without the backend, and stores an answer generated on the user's device", async () => {
    const dev = app.devInference();
    const chatCalls = dev?.stats.chatRequests ?? 0;
    type Prepared = {
      conversation_id: string;
      messages: { role: string; content: string }[];
      passages: { number: number; chunk_id: string; location: { label: string } }[];
      consistency_token: string;
    };
    const prepared = await api<Prepared>(app, "POST", "/v1/chat/prompt", {
      key,
      json: { collection: "sci", question },
    });
    expect(prepared.status).toBe(200);
    expect(prepared.body.messages[0]?.content).toContain("[1]");
    expect(prepared.body.messages.at(-1)).toEqual({ role: "user", content: question });
    expect(prepared.body.passages.length).toBeGreaterThan(1);
    expect(dev?.stats.chatRequests ?? 0).toBe(chatCalls);

    const id = prepared.body.conversation_id;
    type Stored = { message_id: string; citations: { number: number; chunk_id: string }[]; consistency_token: string };
    const answer = {
      content: "The device says so [2].",
      model: "llama3.2",
      chunk_ids: prepared.body.passages.map((p) => p.chunk_id),
    };
    // Another tenant can neither store into the conversation nor cite this tenant's chunks.
    const { key: other } = await newTenantKey(app);
    expect((await api(app, "POST", `/v1/conversations/${id}/answers`, { key: other, json: answer })).status).toBe(404);
    const stored = await api<Stored>(app, "POST", `/v1/conversations/${id}/answers`, {
      key,
      token: prepared.body.consistency_token,
      json: answer,
    });
    expect(stored.status).toBe(201);
    expect(stored.body.citations.map((c) => [c.number, c.chunk_id])).toEqual([
      [2, prepared.body.passages[1]?.chunk_id],
    ]);
    // One answer a question: a second one has no question to answer.
    const again = await api<{ error: { message: string } }>(app, "POST", `/v1/conversations/${id}/answers`, {
      key,
      token: stored.body.consistency_token,
      json: answer,
    });
    expect(again.status).toBe(409);
    expect(again.body.error.message).toMatch(/no question waiting for an answer/);
    type Messages = { messages: { role: string; model: string | null; citations: { number: number }[] }[] };
    const conversation = await api<Messages>(app, "GET", `/v1/conversations/${id}`, {
      key,
      token: stored.body.consistency_token,
    });
    expect(conversation.body.messages.map((m) => [m.role, m.model, m.citations.length])).toEqual([
      ["user", null, 0],
      ["assistant", "on-device:llama3.2", 1],
    ]);
    // Feedback on the device's answer is stored on it, read back with the conversation, and replaced by a later rating.
    await api(app, "POST", "/v1/feedback", {
      key,
      token: stored.body.consistency_token,
      json: { message_id: stored.body.message_id, rating: "up" },
    });
    const feedback = await api(app, "POST", "/v1/feedback", {
      key,
      json: { message_id: stored.body.message_id, rating: "down", comment: "cites the wrong trial" },
    });
    expect([feedback.status, feedback.body]).toEqual([
      200,
      { message_id: stored.body.message_id, rating: "down", comment: "cites the wrong trial" },
    ]);
    const rated = await api<{ messages: { feedback: unknown }[] }>(app, "GET", `/v1/conversations/${id}`, {
      key,
      token: feedback.headers.get("x-consistency-token"),
    });
    expect(rated.body.messages.map((m) => m.feedback)).toEqual([
      null,
      { rating: "down", comment: "cites the wrong trial" },
    ]);
    expect(dev?.stats.chatRequests ?? 0).toBe(chatCalls);
  });

  it("rejects an empty question and an unknown conversation clearly", async () => {
    const empty = await api<{ error: { message: string } }>(app, "POST", "/v1/chat", {
      key,
      json: { question: " ", collection: "sci" },
    });
    expect([empty.status, empty.body.error.message]).toEqual([400, "invalid request: question: the question is empty"]);
    const unknown = await api<{ error: { message: string } }>(app, "POST", "/v1/chat", {
      key,
      json: { question: "x", collection: "sci", conversation_id: crypto.randomUUID() },
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toMatch(/no conversation/);
  });

  it("aborts the upstream request when the client disconnects, keeping the partial answer", async () => {
    const dev = app.devInference();
    if (!dev) throw new Error("expected the dev backend");
    injectDevFaults(dev, { tokenDelayMs: 50 });
    const before = dev.stats.abortedChats;
    const controller = new AbortController();
    const response = await fetch(`${baseURL()}/chat`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ question, collection: "sci" }),
      signal: controller.signal,
    });
    let conversation = "";
    let tokens = 0;
    // Injected: the client goes away after two tokens.
    await readSse(response, (event, data) => {
      if (event === "start") conversation = JSON.parse(data).conversation_id;
      if (event === "token" && ++tokens === 2) {
        controller.abort();
        return false;
      }
      return true;
    }).catch(() => []);
    await waitFor("the dev backend to see the aborted stream", () => dev.stats.abortedChats > before, 10_000);
    const history = await waitFor("the partial answer to be stored", async () => {
      const r = await api<{ messages: { role: string; status: string; content: string }[] }>(
        app,
        "GET",
        `/v1/conversations/${conversation}`,
        { key },
      );
      return r.body.messages.length === 2 ? r.body.messages : undefined;
    });
    expect(history?.[1]).toMatchObject({ role: "assistant", status: "partial" });
    expect(history?.[1]?.content.length).toBeGreaterThan(0);
  });
});

describe("conversation quota", () => {
  it("bounds the conversations a tenant starts a day, even with a read key; continuing one is not limited", async () => {
    const quota = await startTestApp({ PGRAG_MAX_CONVERSATIONS_PER_DAY: "2" });
    const writer = await newTenantKey(quota);
    const created = await createCollection(quota, writer.key, "empty");
    // A second key of the same tenant, read-only: the quota is the tenant's, whichever key asks.
    const { key: readKey } = await adminTransaction(quota, async (tx) =>
      createApiKey(tx, { tenantId: writer.tenantId, name: "reader", scopes: ["read"] }),
    );
    const ask = (key: string, conversation?: string) =>
      api<{ conversation_id: string; error?: { code: string; message: string } }>(quota, "POST", "/v1/chat", {
        key,
        token: created,
        json: {
          question: "Anything?",
          collection: "empty",
          mode: "bm25",
          stream: false,
          ...(conversation ? { conversation_id: conversation } : {}),
        },
      });
    const first = await ask(readKey);
    expect(first.status).toBe(200);
    expect((await ask(writer.key)).status).toBe(200);
    const over = await ask(readKey);
    expect(over.status).toBe(429);
    expect(over.body.error?.message).toMatch(
      /started 2 conversations in the last day.*PGRAG_MAX_CONVERSATIONS_PER_DAY/,
    );
    expect((await ask(readKey, first.body.conversation_id)).status).toBe(200);
  });
});

describe("shutdown", () => {
  it("ends within its deadline while an answer is still on its way, cutting the request off", async () => {
    const stopping = await startTestApp({ PGRAG_SHUTDOWN_TIMEOUT_MS: "500" }, { listen: true });
    const dev = stopping.devInference();
    injectDevFaults(dev, { firstTokenDelayMs: 120_000 }); // an answer that would take two minutes
    const { key: stoppingKey } = await newTenantKey(stopping);
    const created = await createCollection(stopping, stoppingKey, "empty");
    const before = dev?.stats.chatRequests ?? 0;
    // How the request ends, handled from the start (it is expected to fail).
    const outcome = fetch(`http://127.0.0.1:${stopping.port()}/v1/chat`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${stoppingKey}`,
        "Content-Type": "application/json",
        "X-Consistency-Token": created,
      },
      body: JSON.stringify({ question: "Anyone there?", collection: "empty", mode: "bm25" }),
    })
      .then((response) => response.text())
      .then(
        (text) => (text.includes("event: done") ? "answered" : "cut off"),
        () => "cut off",
      );
    await waitFor("the question to reach the backend", () => (dev?.stats.chatRequests ?? 0) > before);
    // Without the deadline, stop() would wait for the two-minute answer (past this test's timeout).
    await stopping.stop();
    // The request was cut off: the client sees its connection end, not an answer.
    expect(await outcome).toBe("cut off");
  });
});

describe("admission control and backend faults", () => {
  it("answers 429 with Retry-After past the concurrency limit and queue, and none hang", async () => {
    const limited = await startTestApp(
      {
        PGRAG_INFERENCE_MAX_CONCURRENT: "2",
        PGRAG_INFERENCE_MAX_QUEUED: "1",
      },
      { workers: true },
    );
    const dev = limited.devInference();
    if (!dev) throw new Error("expected the dev backend");
    const { key: limitedKey } = await seed(limited);
    injectDevFaults(dev, { firstTokenDelayMs: 500 }); // every answer holds its slot for half a second
    const responses = await Promise.all(
      Array.from({ length: 6 }, () =>
        api(limited, "POST", "/v1/chat", {
          key: limitedKey,
          json: { question, collection: "sci", stream: false },
        }),
      ),
    );
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429]);
    for (const r of responses.filter((x) => x.status === 429)) expect(r.headers.get("Retry-After")).toBe("1");
  });

  it("answers 502 when the backend is down and keeps the question in the conversation", async () => {
    const down = await startTestApp({
      PGRAG_INFERENCE_URL: "http://127.0.0.1:9/v1",
      PGRAG_INFERENCE_MAX_RETRIES: "0",
    });
    const { key: downKey } = await newTenantKey(down);
    const created = await createCollection(down, downKey, "empty");
    const response = await api<{
      error: { code: string; message: string; details: { conversation_id: string } };
    }>(down, "POST", "/v1/chat", {
      key: downKey,
      token: created, // read-your-writes: the collection is there on whichever node answers
      json: { question: "Is anyone there?", collection: "empty", mode: "bm25", stream: false },
    });
    expect(response.status).toBe(502);
    expect(response.body.error.message).toMatch(/unreachable/);
    const history = await api<{ messages: { role: string; content: string; status: string }[] }>(
      down,
      "GET",
      `/v1/conversations/${response.body.error.details.conversation_id}`,
      { key: downKey },
    );
    expect(history.body.messages.map((m) => [m.role, m.status])).toEqual([
      ["user", "complete"],
      ["assistant", "failed"],
    ]);
    expect(history.body.messages[0]?.content).toBe("Is anyone there?");
  });

  it("answers 504 when the backend is too slow", async () => {
    const slow = await startTestApp(
      { PGRAG_INFERENCE_TIMEOUT_MS: "300", PGRAG_INFERENCE_MAX_RETRIES: "0" },
      { workers: true },
    );
    const dev = slow.devInference();
    if (!dev) throw new Error("expected the dev backend");
    const { key: slowKey } = await newTenantKey(slow);
    const created = await createCollection(slow, slowKey, "empty");
    injectDevFaults(dev, { firstTokenDelayMs: 2_000 });
    const response = await api<{ error: { code: string } }>(slow, "POST", "/v1/chat", {
      key: slowKey,
      token: created,
      json: { question: "Slow?", collection: "empty", mode: "bm25", stream: false },
    });
    expect([response.status, response.body.error.code]).toEqual([504, "timeout"]);
  });
});
