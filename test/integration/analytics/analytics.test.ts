import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventRecorder } from "../../../src/analytics/event-recorder.ts";
import type { App } from "../../../src/app.ts";
import { createLogger } from "../../../src/logger.ts";
import { createMetricsRegistry } from "../../../src/metrics.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { adminQuery, clusterUrls, TEST_CLUSTER } from "../../helpers/cluster.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";
import { type CorpusDocument, readScifactCorpus } from "../../../src/evaluation/datasets.ts";

const VIEWS = [
  "daily_usage",
  "stage_latency",
  "zero_result_queries",
  "top_documents",
  "feedback_rate",
  "token_usage",
  "ingestion_backlog",
  "ingestion_failures",
  "tenant_usage",
  "model_prices",
];

// The analyst's own PgBouncer database: it points at a replica.
const analyst = new pg.Pool({ connectionString: clusterUrls().PGRAG_ANALYST_URL, max: 2 });
analyst.on("error", () => {});
afterAll(() => analyst.end());

let app: App;
let key: string;
let tenantId: string;
let abstracts: CorpusDocument[];
let token: string;
beforeAll(async () => {
  app = await startTestApp({ PGRAG_EVENT_FLUSH_MS: "200" }, { workers: true });
  ({ key, tenantId } = await newTenantKey(app));
  await createCollection(app, key, "sci");
  abstracts = await readScifactCorpus(20);
  await api(app, "POST", "/v1/collections/sci/documents", {
    key,
    json: { documents: abstracts.map((a) => ({ external_id: a._id, title: a.title, content: a.text })) },
  });
  ({ token } = await waitForDocuments(
    app,
    key,
    "sci",
    abstracts.map((a) => a._id),
  ));
});

async function eventsOf(tenant: string) {
  return adminQuery<{
    kind: string;
    http_status: number;
    latency_ms: number;
    payload: Record<string, unknown>;
    request_id: string;
  }>(
    "primary",
    "SELECT kind, http_status, latency_ms, payload, request_id FROM analytics.events WHERE tenant_id = $1 ORDER BY id",
    [tenant],
  );
}

describe("usage events", () => {
  it("records searches, chats and feedback with their fields, written in the background", async () => {
    const query = abstracts[2]?.title ?? "";
    const search = await api<{ results: { chunk_id: string }[]; served_by: string }>(app, "POST", "/v1/search", {
      key,
      token,
      json: { collection: "sci", query, mode: "hybrid" },
    });
    await api(app, "POST", "/v1/search", {
      key,
      token,
      json: { collection: "sci", query: "qqqzzz xxyyzz", mode: "bm25" },
    });
    const chat = await api<{ message_id: string; consistency_token: string }>(app, "POST", "/v1/chat", {
      key,
      token,
      json: { collection: "sci", question: query, stream: false },
    });
    const feedback = await api(app, "POST", "/v1/feedback", {
      key,
      token: chat.body.consistency_token,
      json: { message_id: chat.body.message_id, rating: "up", comment: "useful" },
    });
    expect(feedback.status).toBe(200);
    expect(
      (await api(app, "POST", "/v1/feedback", { key, json: { message_id: "999999999", rating: "down" } })).status,
    ).toBe(404);

    // Written by the app's own flush (every 200 ms here).
    const events = await waitFor("four usage events", async () => {
      const rows = await eventsOf(tenantId);
      return rows.length >= 4 ? rows : undefined;
    });
    expect(events.map((e) => e.kind)).toEqual(["search", "search", "chat", "feedback"]);
    const [first, zero, chatEvent] = events;
    expect(first).toMatchObject({
      http_status: 200,
      payload: { collection: "sci", query, mode: "hybrid", served_by: search.body.served_by },
    });
    expect(first?.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect((first?.payload.results as { chunk_id: string; rank: number }[]).map((r) => r.chunk_id)).toEqual(
      search.body.results.map((r) => r.chunk_id),
    );
    expect(Object.keys(first?.payload.timings_ms as object)).toEqual(
      expect.arrayContaining(["embed", "vector", "bm25", "fetch", "total"]),
    );
    expect(zero?.payload.results).toEqual([]);
    expect(chatEvent?.payload).toMatchObject({ model: "pgrag-dev-extractive", message_id: chat.body.message_id });
    expect(Number(chatEvent?.payload.completion_tokens)).toBeGreaterThan(0);
  });

  it("are flushed on graceful shutdown, and counted when dropped from a full buffer", async () => {
    const small = await startTestApp(
      { PGRAG_EVENT_FLUSH_MS: "3600000", PGRAG_EVENT_BUFFER_SIZE: "2" },
      { workers: true },
    );
    const other = await newTenantKey(small);
    await createCollection(small, other.key, "tiny");
    // Injected: five searches into a buffer of two that is not flushed before shutdown.
    for (let i = 0; i < 5; i++)
      await api(small, "POST", "/v1/search", {
        key: other.key,
        json: { collection: "tiny", query: `q${i}`, mode: "bm25" },
      });
    const metrics = await (await small.http.request("/metrics")).text();
    expect(metrics).toMatch(/pgrag_events_dropped_total 3/);
    expect(await eventsOf(other.tenantId)).toHaveLength(0);
    await small.stop();
    expect((await eventsOf(other.tenantId)).map((e) => e.payload.query)).toEqual(["q0", "q1"]);
  });
});

describe("usage events and poison pills", () => {
  // A recorder of the test's own, flushed when the test says (the app's flushes on a timer).
  const recorder = () => {
    const registry = createMetricsRegistry();
    const events = new EventRecorder(app.router, createLogger({ logLevel: "silent" }), registry, app.config.analytics);
    return { events, metric: async (name: string) => (await registry.getSingleMetric(name)?.get())?.values[0]?.value };
  };

  it("store a NUL or an unpaired surrogate from request text instead of failing the batch", async () => {
    const other = await newTenantKey(app);
    const marker = crypto.randomUUID();
    const { events: usage } = recorder();
    usage.record({
      tenantId: other.tenantId,
      kind: "search",
      payload: { query: `nul \u0000 lone \ud800 ${marker}` },
    });
    await usage.flush();
    const events = await eventsOf(other.tenantId);
    expect(events.map((e) => e.payload.query)).toEqual([`nul \uFFFD lone \uFFFD ${marker}`]);
  });

  it("isolate an event the database refuses: the rest of its batch is written, the bad one counted", async () => {
    const first = await newTenantKey(app);
    const second = await newTenantKey(app);
    const { events: usage, metric } = recorder();
    usage.record({ tenantId: first.tenantId, kind: "search", httpStatus: 200, payload: { n: 1 } });
    usage.record({ tenantId: second.tenantId, kind: "search", httpStatus: 10 ** 12, payload: { n: 2 } }); // not an integer column value
    usage.record({ tenantId: second.tenantId, kind: "chat", httpStatus: 201, payload: { n: 3 } });
    await usage.flush();
    expect((await eventsOf(first.tenantId)).map((e) => e.payload.n)).toEqual([1]);
    expect((await eventsOf(second.tenantId)).map((e) => e.payload.n)).toEqual([3]);
    expect(await metric("pgrag_events_rejected_total")).toBe(1);
    // Nothing is left behind to retry forever.
    expect(await metric("pgrag_events_buffered")).toBe(0);
  });

  it("refuse NUL characters in /v1/chat/completions messages with a 400 naming the field", async () => {
    const response = await api<{ error: { code: string; message: string } }>(app, "POST", "/v1/chat/completions", {
      key,
      json: { model: "rag:sci", messages: [{ role: "user", content: "what \u0000 is this?" }] },
    });
    expect(response.status).toBe(400);
    expect(response.body.error.message).toMatch(/messages\.0\.content.*NUL/);
  });
});

describe("the analyst role", () => {
  it("connects to a replica, and every curated view answers", async () => {
    const { rows } = await analyst.query("SELECT pg_is_in_recovery() AS replica, current_user AS who");
    expect(rows[0]).toEqual({ replica: true, who: "pgrag_analyst" });
    await waitFor("the zero-result event on the analyst's replica", async () => {
      const r = await analyst.query("SELECT query FROM analytics.zero_result_queries WHERE tenant_id = $1", [tenantId]);
      return r.rows.some((row) => row.query === "qqqzzz xxyyzz");
    });
    for (const view of VIEWS) await analyst.query(`SELECT * FROM analytics.${view} LIMIT 5`);
    const zero = await analyst.query("SELECT query FROM analytics.zero_result_queries WHERE tenant_id = $1", [
      tenantId,
    ]);
    expect(zero.rows.map((r) => r.query)).toContain("qqqzzz xxyyzz");
    const top = await analyst.query("SELECT external_id FROM analytics.top_documents WHERE tenant_id = $1", [tenantId]);
    expect(top.rows.length).toBeGreaterThan(0);
    // Each quota's use, and the tenant's own limit where it has one (none here: the defaults apply).
    const usage = await analyst.query("SELECT * FROM analytics.tenant_usage WHERE tenant_id = $1", [tenantId]);
    expect(usage.rows[0]).toMatchObject({
      collections: "1",
      collections_quota: null,
      files: "0",
      running_batches: "0",
    });
  });

  it("cannot write, change the schema, or read raw tables and keys", async () => {
    const refused: [string, RegExp][] = [
      ["SELECT * FROM public.api_keys", /permission denied/],
      ["SELECT * FROM public.chunks", /permission denied/],
      ["SELECT * FROM public.documents", /permission denied/],
      ["SELECT * FROM analytics.events", /permission denied/],
      ["INSERT INTO analytics.model_prices (model) VALUES ('x')", /permission denied|read-only/],
      ["UPDATE analytics.model_prices SET usd_per_1k_prompt = 1", /permission denied|read-only/],
      ["DELETE FROM analytics.model_prices", /permission denied|read-only/],
      ["CREATE TABLE analytics.mine (id int)", /permission denied|read-only/],
      ["DROP VIEW analytics.daily_usage", /must be owner|permission denied|read-only/],
      // The SECURITY DEFINER doors: forging another tenant's events, dropping partitions.
      [
        `SELECT analytics.record_events('[{"tenant_id": "${tenantId}", "kind": "chat"}]')`,
        /permission denied for function record_events/,
      ],
      ["SELECT analytics.drop_partitions_before(0)", /permission denied for function drop_partitions_before/],
      ["SELECT analytics.ensure_partitions()", /permission denied for function ensure_partitions/],
      // Schema public is not even visible to the analyst, let alone the key lookup in it.
      ["SELECT * FROM public.pgrag_authenticate('\\x00')", /permission denied for schema public/],
    ];
    for (const [statement, error] of refused) await expect(analyst.query(statement), statement).rejects.toThrow(error);
  });

  it("learns nothing from a leaky function in a WHERE clause: the views are security barriers", async () => {
    // A cheap function that reports every value it sees, as an attacker would write one. Analysts
    // cannot create functions (read-only replica, no CREATE, no TEMP); the superuser plants it to
    // prove the views would not feed it hidden rows even if one existed.
    const secret = `hidden-${crypto.randomUUID()}`;
    await api(app, "POST", "/v1/search", {
      key,
      token,
      json: { collection: "sci", query: `${abstracts[0]?.title} ${secret}`, mode: "bm25" },
    });
    await waitFor("the secret's event written", async () => {
      const rows = await adminQuery<{ n: number }>(
        "primary",
        "SELECT count(*)::int AS n FROM analytics.events WHERE tenant_id = $1 AND strpos(payload->>'query', $2) > 0",
        [tenantId, secret],
      );
      return rows[0]?.n === 1;
    });
    await adminQuery(
      "primary",
      `CREATE FUNCTION analytics.leak_probe(value text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
         BEGIN RAISE NOTICE 'leaked: %', value; RETURN true; END $$;
       GRANT EXECUTE ON FUNCTION analytics.leak_probe(text) TO pgrag_analyst`,
    );
    try {
      const client = await analyst.connect();
      const leaked: string[] = [];
      client.on("notice", (notice) => leaked.push(notice.message ?? ""));
      try {
        // The function was created after the event was written: once it is visible, so is the event.
        await waitFor("the probe on the analyst's replica", async () => {
          const probe = await client.query("SELECT to_regprocedure('analytics.leak_probe(text)') IS NOT NULL AS ok");
          return probe.rows[0]?.ok === true;
        });
        await client.query("SELECT * FROM analytics.zero_result_queries WHERE analytics.leak_probe(query)");
        await client.query("SELECT * FROM analytics.ingestion_failures WHERE analytics.leak_probe(error)");
      } finally {
        client.release();
      }
      expect(leaked.some((message) => message.includes(secret))).toBe(false);
      expect(leaked.some((message) => message.includes("qqqzzz xxyyzz"))).toBe(true); // the probe did run on visible rows
    } finally {
      await adminQuery("primary", "DROP FUNCTION analytics.leak_probe(text)");
    }
  });

  it("runs at most two statements at once, whatever its sessions set: its PgBouncer pool has two server connections", async () => {
    // The bound that holds against intent (docs/analysts.md): a session may raise its own timeouts,
    // but the analytics pool gives all analysts together two backends on one replica.
    const owner = new URL(clusterUrls().PGRAG_MIGRATION_URL ?? "");
    const bouncerAdmin = new pg.Client({
      host: "127.0.0.1",
      port: TEST_CLUSTER.bouncerPort,
      database: "pgbouncer",
      user: owner.username,
      password: decodeURIComponent(owner.password),
    });
    await bouncerAdmin.connect();
    const pool = async () => {
      const { rows } = await bouncerAdmin.query("SHOW POOLS");
      const row = rows.find((r: { database: string }) => r.database === "analytics");
      return { active: Number(row?.sv_active ?? 0), waiting: Number(row?.cl_waiting ?? 0) };
    };
    const holders = [await analyst.connect(), await analyst.connect()];
    const third = new pg.Client({ connectionString: clusterUrls().PGRAG_ANALYST_URL });
    try {
      for (const holder of holders) {
        await holder.query("BEGIN");
        await holder.query("SET LOCAL statement_timeout = 0"); // allowed: it binds this session only
        await holder.query("SELECT 1");
      }
      await third.connect();
      let answered = false;
      const query = third.query("SELECT 1").then(() => {
        answered = true;
      });
      const full = await waitFor("the third analyst statement to queue", async () => {
        const state = await pool();
        return state.active === 2 && state.waiting === 1 ? state : undefined;
      });
      expect(full).toEqual({ active: 2, waiting: 1 });
      expect(answered).toBe(false);
      await holders[0]?.query("COMMIT");
      await query;
      expect(answered).toBe(true);
    } finally {
      await holders[1]?.query("COMMIT").catch(() => undefined);
      for (const holder of holders) holder.release();
      await third.end().catch(() => undefined);
      await bouncerAdmin.end();
    }
  });

  it("has a runaway query cancelled by its statement timeout", async () => {
    await expect(analyst.query("SELECT pg_sleep(30)")).rejects.toMatchObject({ code: "57014" });
  });
});
