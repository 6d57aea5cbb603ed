import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../../harness/wait-for.ts";
import { readSse } from "../../../harness/sse.ts";
import type { App } from "../../../src/app.ts";
import { createLogger } from "../../../src/logger.ts";
import { startTestApp } from "../../helpers/app.ts";
import { api } from "../../helpers/api.ts";
import { seedScifact, waitForDocuments } from "../../helpers/ingest.ts";

const exporter = new InMemorySpanExporter();
/** The app's JSON log lines, parsed. */
const logLines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split("\n")) if (line.trim()) logLines.push(JSON.parse(line));
    done();
  },
});

let app: App;
let key: string;
let tenantId: string;
let question: string;
beforeAll(async () => {
  app = await startTestApp(
    {},
    { workers: true, spanExporter: exporter, logger: createLogger({ logLevel: "info", logFormat: "json" }, sink) },
  );
  const seeded = await seedScifact(app, 12);
  ({ key, tenantId } = seeded);
  question = seeded.abstracts[2]?.title ?? "";
});

const spanId = (span: ReadableSpan) => span.spanContext().spanId;
const parentId = (span: ReadableSpan) => span.parentSpanContext?.spanId;

/** The spans under `root`, depth first, each with its depth. */
function tree(spans: readonly ReadableSpan[], root: ReadableSpan, depth = 0): { span: ReadableSpan; depth: number }[] {
  return [
    { span: root, depth },
    ...spans.filter((s) => parentId(s) === spanId(root)).flatMap((child) => tree(spans, child, depth + 1)),
  ];
}

describe("traces", () => {
  it("nest one chat request's hops under its HTTP span, in the caller's trace", async () => {
    const traceId = randomBytes(16).toString("hex");
    const callerSpan = randomBytes(8).toString("hex");
    const response = await app.http.request("/v1/chat", {
      method: "POST",
      headers: {
        Authorization: `Bearer ${key}`,
        "Content-Type": "application/json",
        traceparent: `00-${traceId}-${callerSpan}-01`,
      },
      body: JSON.stringify({ question, collection: "sci" }),
    });
    const events = await readSse(response);
    expect(events.at(-1)?.event).toBe("done");

    // The request's span ends with the stream's last byte: poll the exporter for it.
    const spans = await waitFor("the chat request's span", () => {
      const mine = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
      return mine.some((s) => s.kind === SpanKind.SERVER) ? mine : undefined;
    });
    const root = spans.find((s) => s.kind === SpanKind.SERVER) as ReadableSpan;
    expect(root.name).toBe("POST /v1/chat");
    expect(parentId(root)).toBe(callerSpan);
    expect(root.attributes["http.response.status_code"]).toBe(200);
    const nested = tree(spans, root);
    // Every span of the trace hangs under the request's.
    expect(nested.map((n) => n.span)).toHaveLength(spans.length);

    const named = (pattern: RegExp) => nested.filter((n) => pattern.test(n.span.name)).map((n) => n.span);
    // The question embedded, interactively.
    const [embedding] = named(/^embeddings /);
    expect(embedding?.kind).toBe(SpanKind.CLIENT);
    expect(embedding?.attributes["pgrag.inference.priority"]).toBe("interactive");
    // Retrieval routed to a node, its statements recorded on that node.
    const reads = named(/^db\.read$/);
    expect(reads.length).toBeGreaterThan(0);
    for (const read of reads) {
      const node = read.attributes["pgrag.db.node"];
      expect(node).toMatch(/^(replica\d+|primary)$/);
      expect(read.attributes["pgrag.db.reason"]).toMatch(/^(replica|fallback|retry)$/);
      const statements = spans.filter((s) => parentId(s) === spanId(read));
      expect(statements.length).toBeGreaterThan(0);
      for (const statement of statements) {
        expect(statement.name).toBe("db.statement");
        expect(statement.attributes["pgrag.db.node"]).toBe(node);
        // Settings (the tenant, the principals) never reach the trace as values.
        expect(String(statement.attributes["db.query.text"])).not.toContain(tenantId);
      }
    }
    const search = reads.flatMap((read) => spans.filter((s) => parentId(s) === spanId(read)));
    expect(search.some((s) => /bm25_blocks/.test(String(s.attributes["db.query.text"])))).toBe(true);
    // The conversation written on the primary, with its token.
    const writes = named(/^db\.write$/);
    expect(writes.length).toBeGreaterThan(0);
    expect(writes[0]?.attributes["pgrag.db.node"]).toBe("primary");
    expect(writes[0]?.attributes["pgrag.db.token"]).toMatch(/^[1-9][0-9]*:[0-9A-F]+\/[0-9A-F]+$/);
    // The answer: admitted, then streamed, its tokens counted.
    const [chat] = named(/^chat /);
    expect(chat?.attributes["gen_ai.usage.output_tokens"]).toBeGreaterThan(0);
    expect(chat?.events.map((e) => e.name)).toContain("admitted");
    expect(chat?.endTime).toBeDefined();

    // The request's log line names the trace and the span.
    const line = logLines.find((l) => l.msg === "request" && l.path === "/v1/chat" && l.trace_id === traceId);
    expect(line?.span_id).toBe(spanId(root));
  });

  it("trace every statement and statement failure with its text and no values", async () => {
    const before = exporter.getFinishedSpans().length;
    const response = await app.http.request("/v1/search", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ query: "a secret query phrase", collections: ["sci"], mode: "bm25" }),
    });
    expect(response.status).toBe(200);
    const spans = await waitFor("the search's span", () => {
      const fresh = exporter.getFinishedSpans().slice(before);
      return fresh.some((s) => s.name === "POST /v1/search") ? fresh : undefined;
    });
    const statements = spans.filter((s) => s.name === "db.statement");
    expect(statements.length).toBeGreaterThan(0);
    for (const s of statements) expect(String(s.attributes["db.query.text"])).not.toContain("secret");
  });

  it("make each ingestion run a trace of its own, with its embeddings and its write", async () => {
    // Text no earlier test wrote: its chunks' embeddings are not cached, the run asks the backend.
    const externalId = `fresh-${randomBytes(4).toString("hex")}`;
    const content = `Trace ${randomBytes(8).toString("hex")} follows ingestion ${randomBytes(8).toString("hex")}.`;
    const upload = await api(app, "POST", "/v1/collections/sci/documents", {
      key,
      json: { documents: [{ external_id: externalId, content }] },
    });
    expect(upload.status).toBe(202);
    await waitForDocuments(app, key, "sci", [externalId]);
    const spans = exporter.getFinishedSpans();
    const jobs = spans.filter((s) => s.name === "job ingestion");
    for (const job of jobs) {
      expect(job.kind).toBe(SpanKind.CONSUMER);
      expect(job.parentSpanContext).toBeUndefined();
    }
    // A run that embedded documents (another may only have found its jobs taken or deleted).
    const names = jobs
      .map((job) => tree(spans, job).map((n) => n.span.name))
      .find((tree) => tree.some((name) => name.startsWith("embeddings ")));
    expect(names).toBeDefined();
    expect(names).toContain("db.write");
    expect(names).toContain("db.statement");
  });

  it("leave the node monitor's probes out: no trace starts without a request or a job", async () => {
    const roots = exporter.getFinishedSpans().filter((s) => s.parentSpanContext === undefined);
    for (const root of roots) expect(root.kind === SpanKind.SERVER || root.kind === SpanKind.CONSUMER).toBe(true);
  });
});
