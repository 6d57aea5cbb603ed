import { existsSync, readFileSync } from "node:fs";
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

const milliseconds = (fallback: number) => z.coerce.number().int().min(0).max(3_600_000).default(fallback);

const schema = z.object({
  PGRAG_HOST: z.string().min(1).default("127.0.0.1"),
  PGRAG_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  PGRAG_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),

  PGRAG_PRIMARY_URL: postgresUrl,
  PGRAG_REPLICA_URLS: commaList.pipe(z.array(postgresUrl)),
  PGRAG_MIGRATION_URL: postgresUrl.optional(),
  PGRAG_POOL_SIZE: z.coerce.number().int().min(1).max(500).default(10),

  PGRAG_MONITOR_INTERVAL_MS: milliseconds(250),
  PGRAG_MAX_REPLICA_LAG_MS: milliseconds(5_000),
  PGRAG_CONSISTENCY_WAIT_MS: milliseconds(250),
  PGRAG_READ_FALLBACK_TO_PRIMARY: z.stringbool().default(true),
  PGRAG_BREAKER_MAX_BACKOFF_MS: milliseconds(10_000),
  PGRAG_PROBE_TIMEOUT_MS: milliseconds(1_000),

  PGRAG_EMBEDDING_MODEL: z.string().min(1).default("pgrag-dev-hash"),
  PGRAG_EMBEDDING_DIM: z.coerce.number().int().min(1).max(16_000).default(384),
});

type RawConfig = z.infer<typeof schema>;

export interface Config {
  readonly http: { readonly host: string; readonly port: number };
  readonly logLevel: RawConfig["PGRAG_LOG_LEVEL"];
  readonly database: {
    readonly primaryUrl: string;
    readonly replicaUrls: readonly string[];
    /** Direct (not pooled) primary connection: migrations take session advisory locks. */
    readonly migrationUrl: string;
    readonly poolSize: number;
  };
  readonly routing: {
    readonly monitorIntervalMs: number;
    readonly maxReplicaLagMs: number;
    readonly consistencyWaitMs: number;
    readonly readFallbackToPrimary: boolean;
    readonly breakerMaxBackoffMs: number;
    readonly probeTimeoutMs: number;
  };
  readonly embedding: { readonly model: string; readonly dimension: number };
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const variable = issue.path.join(".") || "(environment)";
      const problem =
        issue.code === "invalid_type" && issue.input === undefined ? "is required" : issue.message;
      return `  ${variable}: ${problem}`;
    })
    .join("\n");
}

function readEnvFile(path: string): Record<string, string> {
  if (!existsSync(path)) throw new ConfigError(`PGRAG_ENV_FILE: file not found: ${path}`);
  return parseEnv(readFileSync(path, "utf8")) as Record<string, string>;
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
  return deepFreeze({
    http: { host: raw.PGRAG_HOST, port: raw.PGRAG_PORT },
    logLevel: raw.PGRAG_LOG_LEVEL,
    database: {
      primaryUrl: raw.PGRAG_PRIMARY_URL,
      replicaUrls: raw.PGRAG_REPLICA_URLS,
      migrationUrl: raw.PGRAG_MIGRATION_URL ?? raw.PGRAG_PRIMARY_URL,
      poolSize: raw.PGRAG_POOL_SIZE,
    },
    routing: {
      monitorIntervalMs: raw.PGRAG_MONITOR_INTERVAL_MS,
      maxReplicaLagMs: raw.PGRAG_MAX_REPLICA_LAG_MS,
      consistencyWaitMs: raw.PGRAG_CONSISTENCY_WAIT_MS,
      readFallbackToPrimary: raw.PGRAG_READ_FALLBACK_TO_PRIMARY,
      breakerMaxBackoffMs: raw.PGRAG_BREAKER_MAX_BACKOFF_MS,
      probeTimeoutMs: raw.PGRAG_PROBE_TIMEOUT_MS,
    },
    embedding: { model: raw.PGRAG_EMBEDDING_MODEL, dimension: raw.PGRAG_EMBEDDING_DIM },
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
