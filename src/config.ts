import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseEnv } from "node:util";
import { z } from "zod";

/**
 * The one place that reads the environment. Everything else receives the frozen `Config`.
 * Variables may also come from an env file named by PGRAG_ENV_FILE (the file `replicas/cluster.sh`
 * writes); variables already in the environment win over the file.
 */

const commaList = z
  .string()
  .default("")
  .transform((s) =>
    s
      .split(",")
      .map((part) => part.trim())
      .filter((part) => part.length > 0),
  );

const postgresUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL")
  .refine((s) => URL.canParse(s), "is not a valid URL");

/** A per-tenant quota's default (a tenant's own, in tenant_quotas, wins). */
const quota = (fallback: number, what: string) =>
  z.coerce
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(fallback)
    .describe(`quota: ${what}, unless the tenant has its own (pgrag quotas)`);

/** In embedded mode: how long a health probe may wait for the one session before the node counts as down. */
const EMBEDDED_PROBE_TIMEOUT_MS = 60_000;
/** In embedded mode: documents per ingestion write transaction at most. */
const EMBEDDED_WORKER_BATCH_SIZE = 8;

const milliseconds = (fallback: number) => z.coerce.number().int().min(0).max(3_600_000).default(fallback);

/** Origins on the user's own machine: the console may send a prompt there and nowhere else. */
const loopbackOrigins = z
  .string()
  .transform((value) => value.split(/[\s,]+/).filter(Boolean))
  .pipe(
    z.array(
      z
        .string()
        .regex(
          /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\]):\d{1,5}$/,
          "an origin on this machine, such as http://127.0.0.1:11434 (scheme, loopback host and port)",
        ),
    ),
  );

const schema = z.object({
  PGRAG_CONSOLE_ENGINE_ORIGINS: loopbackOrigins
    .default(["http://127.0.0.1:11434", "http://localhost:11434"])
    .describe(
      "where the console may reach an inference engine on the user's own machine (Ollama's port by default), space-separated",
    ),
  PGRAG_HOST: z.string().min(1).default("127.0.0.1").describe("HTTP listener address"),
  PGRAG_PORT: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .optional()
    .describe("HTTP listener port (wins over PORT); 8080 when neither is set"),
  // The conventional variable of platforms that assign the port; PGRAG_PORT wins when both are set.
  PORT: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .optional()
    .describe("the conventional port variable of platforms that assign one"),
  PGRAG_LOG_LEVEL: z
    .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
    .default("info")
    .describe("pino log level; log lines carry request ids"),
  // auto: readable lines in a terminal, JSON otherwise.
  PGRAG_LOG_FORMAT: z
    .enum(["auto", "json", "pretty"])
    .default("auto")
    .describe("auto: readable lines in a terminal, JSON otherwise; or json, pretty"),
  // OpenTelemetry's own variable names, so that a collector set up for other services works as it is.
  OTEL_TRACES_EXPORTER: z
    .enum(["none", "otlp", "console"])
    .default("none")
    .describe("traces: none (off, no cost), otlp (OTLP over HTTP), console (spans on stdout)"),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z
    .url()
    .optional()
    .describe("where OTLP traces are sent; unset: OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces"),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().default("http://localhost:4318").describe("the OTLP collector's base URL"),
  OTEL_SERVICE_NAME: z.string().min(1).default("pgrag").describe("the service name on every span"),
  OTEL_TRACES_SAMPLER_ARG: z.coerce
    .number()
    .min(0)
    .max(1)
    .default(1)
    .describe("share of traces started here that are recorded (a caller's traceparent decides for its own)"),
  // Graceful shutdown gets this long (in-flight requests, running jobs, the event flush); then it is forced.
  PGRAG_SHUTDOWN_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .max(600_000)
    .default(25_000)
    .describe(
      "graceful shutdown (in-flight requests, running batches, the event flush) gets this long, then connections are cut",
    ),

  // Unset: the embedded PostgreSQL (PGlite) is started instead, for trying and developing.
  PGRAG_PRIMARY_URL: postgresUrl
    .optional()
    .describe("pooled primary, e.g. postgres://pgrag_app:…@127.0.0.1:6432/primary; unset: the embedded PGlite"),
  PGRAG_EMBEDDED_DATA_DIR: z
    .string()
    .min(1)
    .default(".pgrag/data")
    .describe("the embedded database's folder (its Unix socket sits beside it in socket/, mode 0700: no TCP port)"),
  PGRAG_EMBEDDED_PORT: z.coerce
    .number()
    .int()
    .min(1)
    .max(65535)
    .default(5499)
    .describe("the number in the embedded database's socket name (.s.PGSQL.<n>)"),
  PGRAG_REPLICA_URLS: commaList.pipe(z.array(postgresUrl)).describe("comma-separated pooled replica URLs"),
  PGRAG_MIGRATION_URL: postgresUrl
    .optional()
    .describe("direct primary connection as the schema owner (migrations, admin CLI); default: the primary URL"),
  PGRAG_POOL_SIZE: z.coerce
    .number()
    .int()
    .min(1)
    .max(500)
    .default(10)
    .describe("client-side pool per node (1 for the embedded database)"),

  PGRAG_MONITOR_INTERVAL_MS: milliseconds(250).describe(
    "how often every node is probed (replay position, lag, reachability)",
  ),
  PGRAG_MAX_REPLICA_LAG_MS: milliseconds(5_000).describe(
    "replicas lagging more leave rotation for reads without a token",
  ),
  PGRAG_CONSISTENCY_WAIT_MS: milliseconds(250).describe(
    "how long a read with a token waits for a replica (once per read) before going to the primary",
  ),
  PGRAG_READ_FALLBACK_TO_PRIMARY: z
    .stringbool()
    .default(true)
    .describe("serve reads from the primary when no replica is in rotation"),
  PGRAG_BREAKER_MAX_BACKOFF_MS: milliseconds(10_000).describe(
    "longest probe backoff of a replica that is down (the primary: at most 1 s)",
  ),
  PGRAG_PROBE_TIMEOUT_MS: milliseconds(1_000).describe("a slower probe marks the node down"),

  PGRAG_AUTH_CACHE_TTL_MS: milliseconds(10_000).describe("a revoked key stops working within this"),
  PGRAG_JWKS_COOLDOWN_MS: milliseconds(30_000).describe(
    "an identity provider's JWKS is fetched again for an unknown key id at most this often (key rotation)",
  ),
  PGRAG_JWKS_ALLOW_LOOPBACK: z
    .stringbool()
    .default(false)
    .describe("let tenants register a JWKS URL on this machine over plain http (development and tests only)"),
  PGRAG_RATE_LIMIT_PER_SECOND: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(100)
    .describe("requests per second per API key (429 past it)"),
  PGRAG_RATE_LIMIT_BURST: z.coerce.number().int().min(1).max(1_000_000).default(200).describe("burst per API key"),
  // Unknown or revoked keys tried per client address per minute before it gets 429 (ten times that in total).
  // All of a tenant's keys together (bursts of twice this): more keys do not buy more of the platform.
  PGRAG_TENANT_RATE_LIMIT_PER_SECOND: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(200)
    .describe("all of a tenant's keys together (bursts of twice that): more keys do not buy more"),
  PGRAG_UNKNOWN_KEYS_PER_MINUTE: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(60)
    .describe("unknown or revoked keys tried per client address (ten times that in total) before 429, with no lookup"),

  PGRAG_EMBEDDING_MODEL: z
    .string()
    .min(1)
    .default("pgrag-dev-hash")
    .describe("recorded by the first migration; a different one is refused at start-up"),
  PGRAG_EMBEDDING_DIM: z.coerce
    .number()
    .int()
    .min(1)
    .max(16_000)
    .default(384)
    .describe("recorded by the first migration; a different one is refused at start-up"),
  PGRAG_VECTOR_INDEX: z
    .enum(["auto", "vector", "halfvec", "binary"])
    .default("auto")
    .describe(
      "HNSW index over the embeddings, recorded by the migrations: vector (≤ 2,000 dimensions), halfvec (≤ 4,000, half the memory), binary (binary_quantize, any size, re-ranked exactly; HNSW m = 8, the others 16); auto picks by dimension",
    ),
  PGRAG_EMBEDDING_BATCH_SIZE: z.coerce
    .number()
    .int()
    .min(1)
    .max(2048)
    .default(64)
    .describe("texts per embedding request"),
  PGRAG_EMBEDDING_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .default(4)
    .describe("embedding requests in flight at once"),

  PGRAG_HNSW_EF_SEARCH: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(200)
    .describe("vector leg: hnsw.ef_search per query (SET LOCAL)"),
  PGRAG_BINARY_OVERSAMPLING: z.coerce
    .number()
    .int()
    .min(1)
    .max(100)
    .optional()
    .describe(
      "vector leg, binary index: candidates per result taken by Hamming distance and re-ranked exactly; by default ⌈6,400 ÷ dimension⌉ within 4–100 (fewer bits, more candidates: 50 at 128-d, 17 at 384-d, 5 at 1,536-d)",
    ),
  PGRAG_EXACT_SCAN_THRESHOLD: z.coerce
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(5_000)
    .describe("vector leg: filters leaving this many chunks or fewer use an exact scan"),
  PGRAG_BM25_FILTERED_SCAN_THRESHOLD: z.coerce
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(15_000)
    .describe(
      "BM25 leg: filters (or access lists) leaving this many chunks or fewer score those chunks directly instead of early termination over the postings",
    ),
  PGRAG_BM25_K1: z.coerce.number().min(0).max(10).default(0.9).describe("BM25 term-frequency saturation"),
  PGRAG_BM25_B: z.coerce.number().min(0).max(1).default(0.4).describe("BM25 length normalisation"),
  PGRAG_RRF_K: z.coerce.number().int().min(1).max(10_000).default(60).describe("reciprocal rank fusion constant"),
  // Tuned on SciFact train with the dev hashed embeddings (see README, Evaluation): with a weak
  // vector leg, score fusion with a small vector weight beats BM25 where equal-weight RRF does not.
  // Retune with `npm run eval` for a real embedding model.
  PGRAG_FUSION: z
    .enum(["rrf", "weighted"])
    .default("weighted")
    .describe("default fusion: weighted (min-max normalised scores) or rrf"),
  PGRAG_FUSION_VECTOR_WEIGHT: z.coerce
    .number()
    .min(0)
    .max(100)
    .default(0.3)
    .describe("weighted fusion: the vector leg's weight (tuned on SciFact train for the dev embeddings)"),
  PGRAG_FUSION_BM25_WEIGHT: z.coerce
    .number()
    .min(0)
    .max(100)
    .default(1)
    .describe("weighted fusion: the BM25 leg's weight"),

  PGRAG_RERANK_MODEL: z
    .string()
    .min(1)
    .optional()
    .describe("a reranker model (a cross-encoder) at PGRAG_RERANK_URL; unset: no rerank stage"),
  PGRAG_RERANK_URL: z
    .url()
    .optional()
    .describe(
      "the reranker's base URL, POST {url}/rerank (…/v1 for Cohere, Jina, vLLM, Infinity; the root for TEI); unset: the inference backend",
    ),
  PGRAG_RERANK_API: z
    .enum(["rerank", "tei"])
    .default("rerank")
    .describe(
      "rerank: {model, query, documents, top_n} → results[{index, relevance_score}]; tei: Hugging Face TEI's /rerank",
    ),
  PGRAG_RERANK_API_KEY: z.string().optional().describe("sent to the reranker; unset: PGRAG_INFERENCE_API_KEY"),
  PGRAG_RERANK_CANDIDATES: z.coerce
    .number()
    .int()
    .min(1)
    .max(200)
    .default(50)
    .describe("fused candidates the reranker orders (N); a request may ask for another number"),
  PGRAG_RERANK_TIMEOUT_MS: milliseconds(2_000).describe(
    "a reranker slower than this is skipped: the fused order is served, and the response says so",
  ),
  PGRAG_RERANK_BREAKER_FAILURES: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(5)
    .describe("consecutive reranker failures that open its breaker (searches then skip it without asking)"),
  PGRAG_RERANK_BREAKER_COOLDOWN_MS: milliseconds(30_000).describe(
    "how long an open reranker breaker waits before letting one request try again",
  ),

  PGRAG_INFERENCE_URL: z
    .url()
    .optional()
    .describe("any OpenAI-compatible base URL (…/v1); unset: the in-process dev inference server"),
  PGRAG_INFERENCE_API_KEY: z.string().default("not-needed").describe("sent to the inference backend"),
  PGRAG_CHAT_MODEL: z.string().min(1).default("pgrag-dev-extractive").describe("chat model name at the backend"),
  PGRAG_INFERENCE_MAX_RETRIES: z.coerce
    .number()
    .int()
    .min(0)
    .max(10)
    .default(3)
    .describe("retries on connect errors, 429 and 5xx"),
  PGRAG_INFERENCE_TIMEOUT_MS: milliseconds(60_000).describe(
    "bounds the wait for response headers and for each streamed chunk",
  ),
  PGRAG_INFERENCE_MAX_CONCURRENT: z.coerce
    .number()
    .int()
    .min(1)
    .max(1024)
    .default(8)
    .describe("admission control: upstream chat requests at once"),
  PGRAG_INFERENCE_MAX_QUEUED: z.coerce
    .number()
    .int()
    .min(0)
    .max(10_000)
    .default(32)
    .describe("admission control: requests waiting (a queue per tenant, served in turn); past it, 429"),
  PGRAG_INFERENCE_QUEUE_WAIT_MS: milliseconds(10_000).describe("admission control: longest wait for a slot"),
  PGRAG_INFERENCE_RESERVED_INTERACTIVE: z.coerce
    .number()
    .int()
    .min(0)
    .max(1024)
    .default(0)
    .describe(
      "admission control: slots batch work never takes, so a chat request starts without waiting for it (needed only without preemption)",
    ),
  PGRAG_INFERENCE_PREEMPT_BATCH: z
    .stringbool()
    .default(true)
    .describe(
      "admission control: a chat request that finds no free slot stops the newest batch request and takes its slot (the batch line runs again)",
    ),
  PGRAG_CHAT_CONTEXT_TOKENS: z.coerce
    .number()
    .int()
    .min(256)
    .max(1_000_000)
    .default(8_192)
    .describe("the model's context window, for the prompt budget"),
  PGRAG_CHAT_MAX_ANSWER_TOKENS: z.coerce
    .number()
    .int()
    .min(16)
    .max(100_000)
    .default(512)
    .describe("tokens reserved for the answer"),
  // Conversations a tenant may start per day (read keys may start them, so they are bounded).
  PGRAG_MAX_CONVERSATIONS_PER_DAY: z.coerce
    .number()
    .int()
    .min(1)
    .max(100_000_000)
    .default(10_000)
    .describe("conversations a tenant may start a day (read keys can start them); 429 past it"),

  PGRAG_EVENT_BUFFER_SIZE: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000_000)
    .default(10_000)
    .describe("usage events waiting to be written; past it, new ones are dropped and counted"),
  PGRAG_EVENT_FLUSH_MS: milliseconds(1_000).describe("how often usage events are written"),
  PGRAG_EVENT_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3650)
    .default(30)
    .describe("daily partitions of usage events kept"),
  PGRAG_ANALYST_PASSWORD: z
    .string()
    .min(12, "use at least 12 characters")
    .optional()
    .describe("set on the analyst role by pgrag migrate"),
  PGRAG_ANALYST_STATEMENT_TIMEOUT_MS: milliseconds(30_000).describe(
    "the analyst role's default statement timeout (set by pgrag migrate)",
  ),

  PGRAG_WORKER_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(0)
    .max(64)
    .default(4)
    .describe(
      "ingestion fetch loops in this process (0: none; run pgrag worker elsewhere); each loads, chunks and embeds its batch, then writes it in one of the PGRAG_WORKER_WRITERS write slots",
    ),
  PGRAG_WORKER_WRITERS: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .default(2)
    .describe(
      "ingestion write transactions at once in this process (and import batches staged at once), at most PGRAG_WORKER_CONCURRENCY: fetch loops beyond it prepare their next batch meanwhile",
    ),
  PGRAG_WORKER_BATCH_SIZE: z.coerce
    .number()
    .int()
    .min(1)
    .max(500)
    // Each write statement adds one postings block per distinct term of its chunks: with 64 jobs a
    // batch those blocks held ~3.5 postings each and were most of the write's WAL (bench:ingest).
    .default(256)
    .describe("jobs per ingestion batch: their chunks share embedding requests and one write transaction"),
  PGRAG_WORKER_BATCH_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(32 * 2 ** 20)
    .describe(
      "document bytes an ingestion batch loads at once: a larger batch is processed in slices within it, one after another, so a batch's memory is bounded whatever its size",
    ),
  PGRAG_WORKER_POLL_SECONDS: z.coerce
    .number()
    .min(0.5)
    .max(60)
    .default(0.5)
    .describe("idle poll interval of an ingestion loop"),
  PGRAG_COMPACTION_DELAY_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(3_600)
    .default(30)
    .describe(
      "BM25 postings compaction starts this long after the ingestion batch that asks for it: a burst of writes is compacted once, after it, not alongside (search is exact either way)",
    ),
  PGRAG_INGEST_JOB_EXPIRE_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(86_400)
    .default(30)
    .describe(
      "a job's lease: a live worker renews it every third of it, so only a dead worker's job (ingestion, import, batch line) waits this long to run again",
    ),
  PGRAG_QUEUE_MAINTENANCE_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3_600)
    .default(30)
    .describe("how often expired jobs are looked for"),
  PGRAG_MAX_DOCUMENT_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(5 * 1024 * 1024)
    .describe("largest document (413)"),
  PGRAG_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(64 * 1024 * 1024)
    .describe("largest document upload request (413)"),
  // Every other request body (search, chat, feedback, …): small, so parsing one never stalls the API.
  PGRAG_MAX_JSON_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024)
    .describe("every other request body, checked before the key is looked up (413)"),
  PGRAG_MAX_BATCH_DOCUMENTS: z.coerce
    .number()
    .int()
    .min(1)
    .max(100_000)
    .default(1_000)
    .describe("documents per batch upload"),
  // HTML conversion and chunking of untrusted text run in these threads, never on the event loop.
  PGRAG_TEXT_THREADS: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .default(1)
    .describe("worker threads for HTML conversion and chunking (never on the event loop)"),
  PGRAG_TEXT_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .max(600_000)
    .default(10_000)
    .describe("time budget per document's conversion or chunking; over it: 422, or the document fails for good"),
  PGRAG_TEXT_MAX_QUEUED: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(64)
    .describe("documents waiting for a text thread; past it, 503"),
  // PDF and Office files are parsed in threads of their own, each with a memory cap, so a hostile file fails alone.
  PGRAG_PARSE_THREADS: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .default(1)
    .describe("worker threads that parse PDF, Word and PowerPoint files"),
  PGRAG_PARSE_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(100)
    .max(3_600_000)
    .default(120_000)
    .describe("time budget per file's parse; over it the document fails with the reason"),
  PGRAG_PARSE_MEMORY_MB: z.coerce
    .number()
    .int()
    .min(64)
    .max(65_536)
    .default(1024)
    .describe("heap of a parser thread (its resourceLimits): a file that needs more fails alone"),
  PGRAG_PARSER_URL: z
    .url()
    .optional()
    .describe(
      "an Apache Tika server (e.g. http://tika:9998) for files the built-in parsers find no text in (scanned PDFs, with its OCR)",
    ),
  PGRAG_PARSE_MAX_PAGES: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(5_000)
    .describe("pages of a PDF or slides of a presentation; more: refused with the reason"),
  PGRAG_PARSE_MAX_ZIP_ENTRIES: z.coerce
    .number()
    .int()
    .min(10)
    .max(1_000_000)
    .default(10_000)
    .describe("entries in a Word or PowerPoint file's archive (zip-bomb check)"),
  PGRAG_PARSE_MAX_EXPANDED_BYTES: z.coerce
    .number()
    .int()
    .min(1024 * 1024)
    .max(16 * 1024 * 1024 * 1024)
    .default(512 * 1024 * 1024)
    .describe("expanded size of a Word or PowerPoint file's archive (zip-bomb check)"),
  PGRAG_PARSE_MAX_EXPANSION_RATIO: z.coerce
    .number()
    .int()
    .min(2)
    .max(100_000)
    .default(200)
    .describe("expanded size over file size of a Word or PowerPoint file (zip-bomb check)"),
  // A document that would make more chunks fails with the reason: each chunk costs an embedding.
  PGRAG_MAX_CHUNKS_PER_DOCUMENT: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(20_000)
    .describe("a document that would make more chunks fails with the reason"),
  // Batches (OpenAI's Batch API).
  PGRAG_BATCH_MAX_FILE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(1024 * 1024 * 1024)
    .default(100 * 1024 * 1024)
    .describe("largest batch input file (413)"),
  PGRAG_FILE_EXPIRE_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(366 * 86_400)
    .default(30 * 86_400)
    .describe(
      "uploaded batch files and batch outputs are deleted this long after they are made, unless the upload sets expires_after",
    ),
  PGRAG_QUOTA_COLLECTIONS: quota(1_000, "collections a tenant may have"),
  PGRAG_QUOTA_RUNNING_IMPORTS: quota(8, "imports of a tenant not finished at once"),
  PGRAG_QUOTA_FILES: quota(1_000, "uploaded batch files a tenant may keep"),
  PGRAG_QUOTA_RUNNING_BATCHES: quota(32, "batches of a tenant not finished at once"),
  PGRAG_QUOTA_STORED_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(2 ** 50)
    .default(10 * 1024 ** 3)
    .describe(
      "quota: bytes a tenant may store (documents' text, import uploads not yet published, batch files), unless the tenant has its own (pgrag quotas)",
    ),
  PGRAG_BATCH_MAX_LINES: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(50_000)
    .describe("requests per batch file"),
  PGRAG_BATCH_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(0)
    .max(1024)
    .default(16)
    .describe("batch lines in flight per process (each waits for a batch slot of the inference scheduler); 0: none"),
  PGRAG_BATCH_MAX_ATTEMPTS: z.coerce
    .number()
    .int()
    .min(1)
    .max(20)
    .default(5)
    .describe("attempts per batch line before a 429 or 5xx from the backend is its final answer"),
  // Bulk imports (POST /v1/collections/{c}/imports, pgrag import).
  PGRAG_IMPORT_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(8 * 1024 * 1024 * 1024)
    .describe("largest JSONL import upload (413)"),
  PGRAG_IMPORT_MAX_DOCUMENTS: z.coerce
    .number()
    .int()
    .min(1)
    .max(100_000_000)
    .default(10_000_000)
    .describe("lines per import upload"),
  PGRAG_IMPORT_PARTITION_MIN_CHUNKS: z.coerce
    .number()
    .int()
    .min(0)
    .default(20_000)
    .describe(
      "an import leaving a collection with at least this many chunks gives it a partition of its own, indexes built once; smaller ones append to the shared partition",
    ),
  PGRAG_IMPORT_BATCH_DOCUMENTS: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000)
    .default(64)
    .describe("import documents chunked, embedded and staged per transaction"),
  PGRAG_IMPORT_RUNNERS: z.coerce
    .number()
    .int()
    .min(1)
    .max(16)
    .default(2)
    .describe("imports run at once by each worker process; one import's index build does not hold up the others"),
  PGRAG_IMPORT_TURN_DOCUMENTS: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(1_000)
    .describe(
      "documents an import stages in one turn before it goes behind the imports waiting: a large import cannot hold up a small one for longer than a turn",
    ),
  PGRAG_IMPORT_MAINTENANCE_WORK_MEM: z
    .string()
    .regex(/^\d+\s*(kB|MB|GB)$/, "a size such as 512MB or 2GB")
    .default("1GB")
    .describe("memory for building an imported partition's indexes (SET LOCAL maintenance_work_mem)"),
});

type RawConfig = z.infer<typeof schema>;

/** Every variable the config reads (for checks of deployment files such as docker-compose.yml). */
export const CONFIG_VARIABLES: readonly string[] = ["PGRAG_ENV_FILE", ...Object.keys(schema.shape)];

/** One variable of the configuration: its default and meaning, read off the schema itself. */
export interface ConfigVariable {
  readonly name: string;
  readonly default: string;
  readonly description: string;
}

/** Every variable the config reads, from the one declaration above (the README's table is generated from it). */
export function configReference(): ConfigVariable[] {
  const defaults = schema.parse({}) as Record<string, unknown>;
  const shown = (value: unknown) =>
    value === undefined ? "unset" : Array.isArray(value) ? value.join(",") || "empty" : String(value);
  return [
    {
      name: "PGRAG_ENV_FILE",
      default: "unset",
      description: "an env file to read these variables from (the environment wins); replicas/cluster.sh writes one",
    },
    ...Object.entries(schema.shape).map(([name, field]) => ({
      name,
      default: shown(defaults[name]),
      description: field.description ?? "",
    })),
  ];
}

export interface Config {
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly maxJsonBodyBytes: number;
    /** PGRAG_CONSOLE_ENGINE_ORIGINS: loopback origins the console may send prompts to (its CSP's connect-src). */
    readonly consoleEngineOrigins: readonly string[];
  };
  readonly logLevel: RawConfig["PGRAG_LOG_LEVEL"];
  readonly logFormat: RawConfig["PGRAG_LOG_FORMAT"];
  /** OpenTelemetry traces; null when off. */
  readonly tracing: {
    readonly exporter: "otlp" | "console";
    /** The OTLP endpoint (traces path included). */
    readonly endpoint: string;
    readonly serviceName: string;
    readonly sampleRatio: number;
  } | null;
  readonly shutdownTimeoutMs: number;
  readonly database: {
    readonly primaryUrl: string;
    readonly replicaUrls: readonly string[];
    /** Direct (not pooled) primary connection: migrations take session advisory locks. */
    readonly migrationUrl: string;
    readonly poolSize: number;
    /**
     * Set when no database URL is configured: PGlite (PostgreSQL in WASM, with pgvector) served on a
     * local port, as primary and sole reader. One session only, hence one pooled connection.
     */
    /** The embedded database listens on a Unix socket in `socketDir` (mode 0700): only this OS user reaches it. */
    readonly embedded: { readonly dataDir: string; readonly port: number; readonly socketDir: string } | null;
  };
  readonly routing: {
    /** The node monitor's options. */
    readonly monitor: {
      readonly intervalMs: number;
      readonly maxReplicaLagMs: number;
      readonly maxBackoffMs: number;
      readonly probeTimeoutMs: number;
    };
    /** The router's options. */
    readonly router: {
      readonly consistencyWaitMs: number;
      readonly readFallbackToPrimary: boolean;
    };
  };
  /** How long a resolved API key is cached: a revoked key stops working within this bound. */
  readonly authCacheTtlMs: number;
  /** Verifying end users' tokens against their tenant's identity provider. */
  readonly endUsers: { readonly jwksCooldownMs: number; readonly allowLoopbackJwks: boolean };
  /** Per API key: a sustained rate and a burst (token bucket), past which requests get 429. */
  readonly rateLimit: {
    readonly perSecond: number;
    readonly burst: number;
    readonly tenantPerSecond: number;
    readonly unknownKeysPerMinute: number;
  };
  readonly embedding: {
    readonly model: string;
    readonly dimension: number;
    readonly indexType: VectorIndexType;
    readonly batchSize: number;
    readonly concurrency: number;
  };
  readonly retrieval: {
    readonly efSearch: number;
    /** Unset: by the dimension (defaultBinaryOversampling). */
    readonly binaryOversampling: number | undefined;
    /** Filters leaving at most this many chunks use an exact scan instead of the HNSW index. */
    readonly exactScanThreshold: number;
    readonly bm25FilteredThreshold: number;
    readonly bm25: { readonly k1: number; readonly b: number };
    readonly rrfK: number;
    /** Default leg weights in fusion; a request may override them. */
    readonly weights: { readonly vector: number; readonly bm25: number };
    readonly fusion: "rrf" | "weighted";
  };
  /** The rerank stage; null when no reranker model is configured. */
  readonly rerank: {
    readonly model: string;
    /** Null: the inference backend's URL (or the dev backend). */
    readonly url: string | null;
    readonly apiKey: string;
    readonly api: "rerank" | "tei";
    readonly candidates: number;
    readonly timeoutMs: number;
    readonly breaker: { readonly failures: number; readonly cooldownMs: number };
  } | null;
  readonly inference: {
    /** Unset: the dev inference server starts in-process (extractive answers, hashed embeddings). */
    readonly url: string | null;
    readonly apiKey: string;
    readonly chatModel: string;
    readonly maxRetries: number;
    readonly timeoutMs: number;
  };
  readonly chat: {
    readonly contextTokens: number;
    readonly maxAnswerTokens: number;
    /** The inference scheduler's options (admission control of every upstream chat request). */
    readonly scheduler: {
      readonly maxConcurrent: number;
      readonly maxQueued: number;
      readonly maxWaitMs: number;
      readonly reservedForInteractive: number;
      readonly preemptBatch: boolean;
    };
    readonly maxConversationsPerDay: number;
  };
  readonly analytics: {
    /** Events waiting to be written; past this, new events are dropped and counted. */
    readonly bufferSize: number;
    readonly flushIntervalMs: number;
    readonly retentionDays: number;
    /** Set on the analyst role by `pgrag migrate` when given. */
    readonly analystPassword: string | null;
    readonly analystStatementTimeoutMs: number;
  };
  readonly ingest: {
    /** Ingestion workers in this process; 0 leaves ingestion to `pgrag worker` processes. */
    readonly workerConcurrency: number;
    /** Write transactions at once, never more than the fetch loops; the other loops prepare their batches meanwhile. */
    readonly workerWriters: number;
    readonly workerBatchSize: number;
    readonly workerBatchBytes: number;
    readonly workerPollSeconds: number;
    /** Delay of the postings compaction an ingestion batch asks for. */
    readonly compactionDelaySeconds: number;
    readonly maxDocumentBytes: number;
    readonly maxBodyBytes: number;
    readonly maxBatchDocuments: number;
    readonly text: {
      readonly threads: number;
      /** Budget per document from when a thread starts on it: past it the thread is terminated and the document refused. */
      readonly timeoutMs: number;
      /** Documents that may wait for a thread. */
      readonly maxQueued: number;
      /** PDF and Office files: their own threads, each with a heap cap (resourceLimits), and the parse's bounds. */
      readonly parsing: {
        readonly threads: number;
        readonly timeoutMs: number;
        readonly memoryMb: number;
        /** PGRAG_PARSER_URL: an external parser for files without a text layer. */
        readonly externalUrl: string | null;
        readonly limits: {
          /** Pages of a PDF, slides of a presentation. */
          readonly maxPages: number;
          /** The extracted text's UTF-8 size (PGRAG_MAX_DOCUMENT_BYTES). */
          readonly maxTextBytes: number;
          /** An Office file's archive: entries, expanded size, and expanded size over the file's. */
          readonly maxZipEntries: number;
          readonly maxExpandedBytes: number;
          readonly maxExpansionRatio: number;
        };
      };
    };
    readonly maxChunksPerDocument: number;
  };
  /** The job queue every background job shares (its options as JobQueue takes them). */
  readonly jobs: {
    /** How long a fetched job is leased to its worker before another may take it (renewed while it runs). */
    readonly jobExpireSeconds: number;
    readonly maintenanceIntervalSeconds: number;
  };
  /** Each quota's default: how many a tenant may hold at once (a tenant's own, in tenant_quotas, wins). */
  readonly quotas: {
    readonly collections: number;
    readonly running_imports: number;
    readonly files: number;
    readonly running_batches: number;
    readonly stored_bytes: number;
  };
  readonly batches: {
    readonly fileExpireSeconds: number;
    readonly maxFileBytes: number;
    readonly maxLines: number;
    readonly concurrency: number;
    readonly maxAttempts: number;
  };
  readonly imports: {
    readonly maxBytes: number;
    readonly maxDocuments: number;
    readonly partitionMinChunks: number;
    readonly batchDocuments: number;
    readonly runners: number;
    readonly turnDocuments: number;
    readonly maintenanceWorkMem: string;
  };
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const variable = issue.path.join(".") || "(environment)";
      const problem = issue.code === "invalid_type" && issue.input === undefined ? "is required" : issue.message;
      return `  ${variable}: ${problem}`;
    })
    .join("\n");
}

function readEnvFile(path: string): Record<string, string> {
  if (!existsSync(path)) throw new ConfigError(`PGRAG_ENV_FILE: file not found: ${path}`);
  return parseEnv(readFileSync(path, "utf8")) as Record<string, string>;
}

export type VectorIndexType = "vector" | "halfvec" | "binary";

/** pgvector's HNSW limits: vector indexes take ≤ 2,000 dimensions, halfvec ≤ 4,000, bit far more. */
const INDEX_MAX_DIMENSIONS: Record<VectorIndexType, number> = { vector: 2_000, halfvec: 4_000, binary: 64_000 };

function vectorIndexType(choice: VectorIndexType | "auto", dimension: number): VectorIndexType {
  if (choice === "auto") {
    return dimension <= INDEX_MAX_DIMENSIONS.vector
      ? "vector"
      : dimension <= INDEX_MAX_DIMENSIONS.halfvec
        ? "halfvec"
        : "binary";
  }
  if (dimension > INDEX_MAX_DIMENSIONS[choice]) {
    throw new ConfigError(
      `invalid configuration:\n  PGRAG_VECTOR_INDEX: a ${choice} HNSW index takes at most ${INDEX_MAX_DIMENSIONS[choice].toLocaleString("en")} dimensions, ` +
        `PGRAG_EMBEDDING_DIM is ${dimension}: use ${dimension <= INDEX_MAX_DIMENSIONS.halfvec ? "halfvec or binary" : "binary"} (or auto)`,
    );
  }
  return choice;
}

/** Parses an environment into a frozen config; throws a ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const fromFile = env.PGRAG_ENV_FILE ? readEnvFile(env.PGRAG_ENV_FILE) : {};
  const merged = { ...fromFile, ...stripEmpty(env) };
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    throw new ConfigError(`invalid configuration:\n${formatIssues(parsed.error)}`);
  }
  const raw = parsed.data;
  const embedded = raw.PGRAG_PRIMARY_URL
    ? null
    : {
        dataDir: raw.PGRAG_EMBEDDED_DATA_DIR,
        port: raw.PGRAG_EMBEDDED_PORT,
        socketDir: resolve(raw.PGRAG_EMBEDDED_DATA_DIR, "..", "socket"),
      };
  if (embedded && raw.PGRAG_REPLICA_URLS.length > 0) {
    throw new ConfigError(
      "invalid configuration:\n  PGRAG_REPLICA_URLS: replicas need PGRAG_PRIMARY_URL (the embedded database has no replicas)",
    );
  }
  const rerankOnly = ["PGRAG_RERANK_URL", "PGRAG_RERANK_API_KEY"] as const;
  const orphan = rerankOnly.filter((name) => merged[name] !== undefined);
  if (!raw.PGRAG_RERANK_MODEL && orphan.length > 0) {
    throw new ConfigError(
      `invalid configuration:\n  ${orphan.join(", ")}: a reranker needs PGRAG_RERANK_MODEL (the model to ask for)`,
    );
  }
  // PGlite's socket server accepts the credentials of its single superuser as given.
  // A socket directory as the host: libpq's convention, which pg follows (the port names the socket file).
  const embeddedUrl = embedded
    ? `postgres://postgres:postgres@localhost:${embedded.port}/postgres?host=${encodeURIComponent(embedded.socketDir)}`
    : "";
  const primaryUrl = raw.PGRAG_PRIMARY_URL ?? embeddedUrl;
  const indexType = vectorIndexType(raw.PGRAG_VECTOR_INDEX, raw.PGRAG_EMBEDDING_DIM);
  return deepFreeze({
    http: {
      host: raw.PGRAG_HOST,
      port: raw.PGRAG_PORT ?? raw.PORT ?? 8080,
      maxJsonBodyBytes: raw.PGRAG_MAX_JSON_BODY_BYTES,
      consoleEngineOrigins: raw.PGRAG_CONSOLE_ENGINE_ORIGINS,
    },
    logLevel: raw.PGRAG_LOG_LEVEL,
    logFormat: raw.PGRAG_LOG_FORMAT,
    tracing:
      raw.OTEL_TRACES_EXPORTER === "none"
        ? null
        : {
            exporter: raw.OTEL_TRACES_EXPORTER,
            endpoint:
              raw.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
              `${raw.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`,
            serviceName: raw.OTEL_SERVICE_NAME,
            sampleRatio: raw.OTEL_TRACES_SAMPLER_ARG,
          },
    shutdownTimeoutMs: raw.PGRAG_SHUTDOWN_TIMEOUT_MS,
    database: {
      primaryUrl,
      replicaUrls: raw.PGRAG_REPLICA_URLS,
      migrationUrl: raw.PGRAG_MIGRATION_URL ?? primaryUrl,
      // PGlite is one session: a second connection's statements would land inside the first's transaction.
      poolSize: embedded ? 1 : raw.PGRAG_POOL_SIZE,
      embedded,
    },
    routing: {
      monitor: {
        intervalMs: raw.PGRAG_MONITOR_INTERVAL_MS,
        maxReplicaLagMs: raw.PGRAG_MAX_REPLICA_LAG_MS,
        maxBackoffMs: raw.PGRAG_BREAKER_MAX_BACKOFF_MS,
        // The embedded database is one session that runs one transaction at a time: a probe waits its
        // turn behind an ingestion write, and a slow one means busy, not down (it has no failover).
        probeTimeoutMs: embedded
          ? Math.max(raw.PGRAG_PROBE_TIMEOUT_MS, EMBEDDED_PROBE_TIMEOUT_MS)
          : raw.PGRAG_PROBE_TIMEOUT_MS,
      },
      router: {
        consistencyWaitMs: raw.PGRAG_CONSISTENCY_WAIT_MS,
        readFallbackToPrimary: raw.PGRAG_READ_FALLBACK_TO_PRIMARY,
      },
    },
    authCacheTtlMs: raw.PGRAG_AUTH_CACHE_TTL_MS,
    endUsers: { jwksCooldownMs: raw.PGRAG_JWKS_COOLDOWN_MS, allowLoopbackJwks: raw.PGRAG_JWKS_ALLOW_LOOPBACK },
    rateLimit: {
      perSecond: raw.PGRAG_RATE_LIMIT_PER_SECOND,
      burst: raw.PGRAG_RATE_LIMIT_BURST,
      tenantPerSecond: raw.PGRAG_TENANT_RATE_LIMIT_PER_SECOND,
      unknownKeysPerMinute: raw.PGRAG_UNKNOWN_KEYS_PER_MINUTE,
    },
    embedding: {
      model: raw.PGRAG_EMBEDDING_MODEL,
      dimension: raw.PGRAG_EMBEDDING_DIM,
      indexType,
      batchSize: raw.PGRAG_EMBEDDING_BATCH_SIZE,
      concurrency: raw.PGRAG_EMBEDDING_CONCURRENCY,
    },
    retrieval: {
      efSearch: raw.PGRAG_HNSW_EF_SEARCH,
      binaryOversampling: raw.PGRAG_BINARY_OVERSAMPLING,
      exactScanThreshold: raw.PGRAG_EXACT_SCAN_THRESHOLD,
      bm25FilteredThreshold: raw.PGRAG_BM25_FILTERED_SCAN_THRESHOLD,
      bm25: { k1: raw.PGRAG_BM25_K1, b: raw.PGRAG_BM25_B },
      rrfK: raw.PGRAG_RRF_K,
      weights: { vector: raw.PGRAG_FUSION_VECTOR_WEIGHT, bm25: raw.PGRAG_FUSION_BM25_WEIGHT },
      fusion: raw.PGRAG_FUSION,
    },
    rerank: raw.PGRAG_RERANK_MODEL
      ? {
          model: raw.PGRAG_RERANK_MODEL,
          url: raw.PGRAG_RERANK_URL ?? null,
          apiKey: raw.PGRAG_RERANK_API_KEY ?? raw.PGRAG_INFERENCE_API_KEY,
          api: raw.PGRAG_RERANK_API,
          candidates: raw.PGRAG_RERANK_CANDIDATES,
          timeoutMs: raw.PGRAG_RERANK_TIMEOUT_MS,
          breaker: { failures: raw.PGRAG_RERANK_BREAKER_FAILURES, cooldownMs: raw.PGRAG_RERANK_BREAKER_COOLDOWN_MS },
        }
      : null,
    inference: {
      url: raw.PGRAG_INFERENCE_URL ?? null,
      apiKey: raw.PGRAG_INFERENCE_API_KEY,
      chatModel: raw.PGRAG_CHAT_MODEL,
      maxRetries: raw.PGRAG_INFERENCE_MAX_RETRIES,
      timeoutMs: raw.PGRAG_INFERENCE_TIMEOUT_MS,
    },
    chat: {
      contextTokens: raw.PGRAG_CHAT_CONTEXT_TOKENS,
      maxAnswerTokens: raw.PGRAG_CHAT_MAX_ANSWER_TOKENS,
      scheduler: {
        maxConcurrent: raw.PGRAG_INFERENCE_MAX_CONCURRENT,
        maxQueued: raw.PGRAG_INFERENCE_MAX_QUEUED,
        maxWaitMs: raw.PGRAG_INFERENCE_QUEUE_WAIT_MS,
        reservedForInteractive: raw.PGRAG_INFERENCE_RESERVED_INTERACTIVE,
        preemptBatch: raw.PGRAG_INFERENCE_PREEMPT_BATCH,
      },
      maxConversationsPerDay: raw.PGRAG_MAX_CONVERSATIONS_PER_DAY,
    },
    analytics: {
      bufferSize: raw.PGRAG_EVENT_BUFFER_SIZE,
      flushIntervalMs: raw.PGRAG_EVENT_FLUSH_MS,
      retentionDays: raw.PGRAG_EVENT_RETENTION_DAYS,
      analystPassword: raw.PGRAG_ANALYST_PASSWORD ?? null,
      analystStatementTimeoutMs: raw.PGRAG_ANALYST_STATEMENT_TIMEOUT_MS,
    },
    jobs: {
      jobExpireSeconds: raw.PGRAG_INGEST_JOB_EXPIRE_SECONDS,
      maintenanceIntervalSeconds: raw.PGRAG_QUEUE_MAINTENANCE_SECONDS,
    },
    ingest: {
      workerConcurrency: raw.PGRAG_WORKER_CONCURRENCY,
      workerWriters: Math.min(raw.PGRAG_WORKER_WRITERS, raw.PGRAG_WORKER_CONCURRENCY),
      // Embedded: short write transactions, so that reads waiting for the one session get their turns.
      workerBatchSize: embedded
        ? Math.min(raw.PGRAG_WORKER_BATCH_SIZE, EMBEDDED_WORKER_BATCH_SIZE)
        : raw.PGRAG_WORKER_BATCH_SIZE,
      workerBatchBytes: raw.PGRAG_WORKER_BATCH_BYTES,
      workerPollSeconds: raw.PGRAG_WORKER_POLL_SECONDS,
      compactionDelaySeconds: raw.PGRAG_COMPACTION_DELAY_SECONDS,
      maxDocumentBytes: raw.PGRAG_MAX_DOCUMENT_BYTES,
      maxBodyBytes: raw.PGRAG_MAX_BODY_BYTES,
      maxBatchDocuments: raw.PGRAG_MAX_BATCH_DOCUMENTS,
      text: {
        threads: raw.PGRAG_TEXT_THREADS,
        timeoutMs: raw.PGRAG_TEXT_TIMEOUT_MS,
        maxQueued: raw.PGRAG_TEXT_MAX_QUEUED,
        parsing: {
          threads: raw.PGRAG_PARSE_THREADS,
          timeoutMs: raw.PGRAG_PARSE_TIMEOUT_MS,
          memoryMb: raw.PGRAG_PARSE_MEMORY_MB,
          externalUrl: raw.PGRAG_PARSER_URL ?? null,
          limits: {
            maxPages: raw.PGRAG_PARSE_MAX_PAGES,
            maxTextBytes: raw.PGRAG_MAX_DOCUMENT_BYTES,
            maxZipEntries: raw.PGRAG_PARSE_MAX_ZIP_ENTRIES,
            maxExpandedBytes: raw.PGRAG_PARSE_MAX_EXPANDED_BYTES,
            maxExpansionRatio: raw.PGRAG_PARSE_MAX_EXPANSION_RATIO,
          },
        },
      },
      maxChunksPerDocument: raw.PGRAG_MAX_CHUNKS_PER_DOCUMENT,
    },
    quotas: {
      collections: raw.PGRAG_QUOTA_COLLECTIONS,
      running_imports: raw.PGRAG_QUOTA_RUNNING_IMPORTS,
      files: raw.PGRAG_QUOTA_FILES,
      running_batches: raw.PGRAG_QUOTA_RUNNING_BATCHES,
      stored_bytes: raw.PGRAG_QUOTA_STORED_BYTES,
    },
    batches: {
      fileExpireSeconds: raw.PGRAG_FILE_EXPIRE_SECONDS,
      maxFileBytes: raw.PGRAG_BATCH_MAX_FILE_BYTES,
      maxLines: raw.PGRAG_BATCH_MAX_LINES,
      concurrency: raw.PGRAG_BATCH_CONCURRENCY,
      maxAttempts: raw.PGRAG_BATCH_MAX_ATTEMPTS,
    },
    imports: {
      maxBytes: raw.PGRAG_IMPORT_MAX_BYTES,
      maxDocuments: raw.PGRAG_IMPORT_MAX_DOCUMENTS,
      partitionMinChunks: raw.PGRAG_IMPORT_PARTITION_MIN_CHUNKS,
      batchDocuments: raw.PGRAG_IMPORT_BATCH_DOCUMENTS,
      runners: raw.PGRAG_IMPORT_RUNNERS,
      turnDocuments: raw.PGRAG_IMPORT_TURN_DOCUMENTS,
      maintenanceWorkMem: raw.PGRAG_IMPORT_MAINTENANCE_WORK_MEM,
    },
  });
}

/** An empty variable means "not set", as shells commonly export `VAR=`. */
function stripEmpty(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value !== "") out[key] = value;
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
