import { trace } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace";
import { describe, expect, it } from "vitest";
import { statementText } from "../../src/db/pools.ts";
import { createTracing, traceIds, TRACING_OFF } from "../../src/tracing.ts";

describe("tracing", () => {
  it("off, runs the work and nothing else", async () => {
    const tracing = createTracing(null);
    expect(tracing.enabled).toBe(false);
    expect(await tracing.span("a", {}, async (span) => span.isRecording())).toBe(false);
    expect(tracing.outgoing()).toEqual({});
    expect(TRACING_OFF.enabled).toBe(false);
  });

  it("nests spans, passes the trace on as traceparent, and names it in log lines", async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = createTracing(null, exporter);
    const seen = await tracing.span("outer", {}, () =>
      tracing.child(
        "inner",
        () => ({ n: 1 }),
        async () => ({ header: tracing.outgoing(), ids: traceIds() }),
      ),
    );
    const [inner, outer] = exporter.getFinishedSpans();
    expect(inner?.name).toBe("inner");
    expect(inner?.parentSpanContext?.spanId).toBe(outer?.spanContext().spanId);
    expect(seen.header.traceparent).toBe(`00-${inner?.spanContext().traceId}-${inner?.spanContext().spanId}-01`);
    expect(seen.ids).toEqual({ trace_id: inner?.spanContext().traceId, span_id: inner?.spanContext().spanId });
    await tracing.shutdown();
  });

  it("starts no trace for a child span or a statement outside one", async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = createTracing(null, exporter);
    await tracing.child(
      "background",
      () => ({}),
      async () => tracing.record("db.statement", {}, 1),
    );
    expect(exporter.getFinishedSpans()).toEqual([]);
    expect(trace.getActiveSpan()).toBeUndefined();
    await tracing.shutdown();
  });

  it("marks a failed span with its error", async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = createTracing(null, exporter);
    await expect(
      tracing.span("failing", {}, async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(exporter.getFinishedSpans()[0]?.status).toMatchObject({ code: 2, message: "boom" });
    await tracing.shutdown();
  });

  it("leaves a transaction's setting values out of a statement's text", () => {
    expect(
      statementText(
        "BEGIN; SELECT set_config('pgrag.tenant_id', 'c0ffee', true), set_config('pgrag.principals', '{\"*\",\"user:o''x\"}', true)",
      ),
    ).toBe("BEGIN; SELECT set_config('pgrag.tenant_id', …, true), set_config('pgrag.principals', …, true)");
    expect(statementText("SELECT 1 FROM chunks WHERE id = $1")).toBe("SELECT 1 FROM chunks WHERE id = $1");
  });
});
