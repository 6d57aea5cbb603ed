import {
  type Attributes,
  type Context,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import type { Config } from "./config.ts";

export { SpanKind };

const propagator = new W3CTraceContextPropagator();
/** What work gets in place of a span when tracing is off: attributes set on it go nowhere. */
const NOT_RECORDING = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
let contextManagerInstalled = false;

/**
 * The platform's spans. Off (the default), every call runs its work and nothing else: no tracer
 * provider, no context manager, nothing exported — the no-op tracer of @opentelemetry/api.
 */
export class Tracing {
  readonly #tracer: Tracer;
  readonly #provider: TracerProvider | null;

  constructor(provider: TracerProvider | null) {
    this.#provider = provider;
    this.#tracer = provider ? provider.getTracer("pgrag") : trace.getTracer("pgrag-off");
  }

  get enabled(): boolean {
    return this.#provider !== null;
  }

  /**
   * Runs `work` in a span whose parent is the current one; ends it when the work settles, marking
   * a thrown error.
   */
  async span<T>(
    name: string,
    attributes: Attributes,
    work: (span: Span) => Promise<T>,
    options: { kind?: SpanKind } = {},
  ): Promise<T> {
    if (!this.#provider) return work(NOT_RECORDING);
    const parent = context.active();
    const span = this.#tracer.startSpan(name, { attributes, kind: options.kind ?? SpanKind.INTERNAL }, parent);
    try {
      return await context.with(trace.setSpan(parent, span), () => work(span));
    } catch (error) {
      failed(span, error);
      throw error;
    } finally {
      span.end();
    }
  }

  /**
   * A span the caller ends, for work that is not one callback (a streamed answer); a child of the
   * current span.
   */
  start(name: string, attributes: Attributes, kind: SpanKind = SpanKind.CLIENT, parent?: Context): Span {
    if (!this.#provider) return NOT_RECORDING;
    return this.#tracer.startSpan(name, { attributes, kind }, parent ?? context.active());
  }

  /**
   * As span(), but only inside a recorded span: the router's reads and writes for background loops
   * (usage events, the node monitor) would otherwise each start a trace of their own. The attributes
   * are computed only for a span that is recorded.
   */
  async child<T>(name: string, attributes: () => Attributes, work: (span: Span) => Promise<T>): Promise<T> {
    if (!this.#provider || !trace.getActiveSpan()?.isRecording()) return work(NOT_RECORDING);
    return this.span(name, attributes(), work);
  }

  /** Runs `work` with `span` as the current span (under `parent`), for a span the caller ends. */
  within<T>(span: Span, parent: Context, work: () => Promise<T>): Promise<T> {
    if (!this.#provider) return work();
    return context.with(trace.setSpan(parent, span), work);
  }

  /**
   * A span that is already over: work timed by someone else (a statement Kysely reports after it
   * ran). Only inside a recorded span, as child().
   */
  record(name: string, attributes: Attributes, durationMs: number, error?: unknown): void {
    if (!this.#provider || !trace.getActiveSpan()?.isRecording()) return;
    const end = Date.now();
    const span = this.#tracer.startSpan(name, { attributes, kind: SpanKind.CLIENT, startTime: end - durationMs });
    if (error !== undefined) failed(span, error);
    span.end(end);
  }

  /** The context a request's `traceparent` header names: its spans join the caller's trace. */
  incoming(headers: Record<string, string>): Context {
    return propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
  }

  /** The `traceparent` header that makes an upstream call (vLLM, TGI, a reranker) part of this trace. */
  outgoing(span?: Span): Record<string, string> {
    if (!this.#provider) return {};
    const carrier: Record<string, string> = {};
    const active = context.active();
    propagator.inject(span ? trace.setSpan(active, span) : active, carrier, defaultTextMapSetter);
    return carrier;
  }

  /** Sends what is buffered and stops the exporter. */
  async shutdown(): Promise<void> {
    await this.#provider?.shutdown();
  }
}

/** Tracing off: what components use when the composition root gives them none. */
export const TRACING_OFF = new Tracing(null);

/** Marks a span as failed with this error. */
export function failed(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}

/**
 * Tracing as configured: OTLP over HTTP or the console, batched; or, for tests, an exporter of the
 * caller's (spans handed over as each ends). Null config and no exporter: off.
 */
export function createTracing(config: Config["tracing"], exporter?: SpanExporter): Tracing {
  if (!config && !exporter) return new Tracing(null);
  if (!contextManagerInstalled) {
    // Process-wide: parent spans follow async calls. Installed once, kept for the process's life.
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    contextManagerInstalled = true;
  }
  const processors: SpanProcessor[] = [];
  if (exporter) processors.push(new SimpleSpanProcessor({ exporter }));
  if (config) {
    processors.push(
      new BatchSpanProcessor({
        exporter:
          config.exporter === "otlp" ? new OTLPTraceExporter({ url: config.endpoint }) : new ConsoleSpanExporter(),
      }),
    );
  }
  return new Tracing(
    new TracerProvider({
      resource: resourceFromAttributes({ "service.name": config?.serviceName ?? "pgrag" }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config?.sampleRatio ?? 1) }),
      spanProcessors: processors,
    }),
  );
}

/** The trace and span ids of the current span, for log lines; empty outside a recorded span. */
export function traceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  const ids = span?.spanContext();
  if (!ids || !trace.isSpanContextValid(ids)) return {};
  return { trace_id: ids.traceId, span_id: ids.spanId };
}
