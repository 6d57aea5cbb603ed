import { parseArgs } from "node:util";
import { createApp } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { AppError } from "./errors.ts";
import { startEmbeddedDatabase } from "./db/embedded.ts";
import { migrate } from "./db/migrate.ts";
import { adminTransaction } from "./tenancy/admin-transaction.ts";
import { runAsk, runIngest } from "./cli/local-commands.ts";
import { evaluateBeir } from "./evaluation/beir.ts";
import { SCIFACT_DIR } from "./evaluation/datasets.ts";
import { startDevInferenceServer } from "./dev/dev-server.ts";
import { createLogger } from "./logger.ts";
import type { SearchMode } from "./retrieval/search.service.ts";
import {
  createApiKey,
  ensureTenant,
  listApiKeys,
  revokeApiKey,
  SCOPES,
  type Scope,
} from "./tenancy/api-keys.ts";

const USAGE = `pgrag — retrieval-augmented generation on PostgreSQL

Usage: pgrag <command> [options]

Commands:
  serve                 run the HTTP API (and ingestion workers) until SIGINT/SIGTERM
  worker                run ingestion workers only, for scale-out (set PGRAG_WORKER_CONCURRENCY)
  migrate [up|down]     apply pending migrations (up) or revert the last one (down)
      --count N         how many migrations to apply or revert
  ingest <path…> [--tenant T] [--collection C]
                        Markdown, text and HTML files (folders recursively) into a collection
  ask "<question>" [--tenant T] [--collection C] [--mode hybrid|vector|bm25]
                        stream an answer with citations to the terminal
  keys create --tenant NAME [--name LABEL] [--scopes read,write,admin]
                        create an API key (and the tenant if new); the key is shown once
  keys list --tenant NAME
  keys revoke KEY_ID
  eval [--dataset DIR (default: the vendored SciFact)] [--split train] [--modes hybrid,vector,bm25] [--limit N]
                        ingest a BEIR-format folder and print nDCG@10, Recall@100 and latency per mode
  dev-inference [--port N]
                        run the OpenAI-compatible dev inference server on its own

Configuration comes from PGRAG_* environment variables (see README), or from the env file named
by PGRAG_ENV_FILE.`;

class UsageError extends Error {}

async function serve(listen: boolean): Promise<void> {
  const app = createApp(loadConfig());
  try {
    await app.start({ listen });
  } catch (error) {
    app.logger.fatal({ err: error }, `start-up failed: ${(error as Error).message}`);
    await app.stop();
    process.exitCode = 1;
    return;
  }
  const key = app.devApiKey();
  if (listen && key) {
    process.stdout.write(`\npgrag is running on an embedded PostgreSQL.\n  chat page: http://${app.config.http.host}:${app.port()}/\n  API key:   ${key}\n\n`);
  }
  await untilSignal(app.logger);
  await app.stop();
}

function untilSignal(logger: { info(obj: object, msg: string): void }): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.once(signal, () => {
        logger.info({ signal }, "shutting down");
        resolve();
      });
    }
  });
}

async function runKeys(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { tenant: { type: "string" }, name: { type: "string" }, scopes: { type: "string" } },
  });
  const [action, keyId] = positionals;
  // An app without workers or listener: it also starts the embedded database when that is the default.
  const app = createApp(loadConfig({ ...process.env, PGRAG_WORKER_CONCURRENCY: "0", PGRAG_LOG_LEVEL: process.env.PGRAG_LOG_LEVEL ?? "warn" }));
  await app.start({ listen: false });
  try {
    if (action === "create") {
      if (!values.tenant) throw new UsageError("keys create needs --tenant NAME");
      const scopes = (values.scopes ?? "read,write").split(",").map((s) => s.trim());
      const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
      if (bad.length > 0 || scopes.length === 0)
        throw new UsageError(`--scopes takes ${SCOPES.join(", ")}; not ${bad.join(", ")}`);
      const tenant = values.tenant;
      const value = await adminTransaction(app, async (tx) => {
        const tenantId = await ensureTenant(tx, tenant);
        return {
          tenantId,
          ...(await createApiKey(tx, { tenantId, name: values.name ?? "cli", scopes: scopes as Scope[] })),
        };
      });
      process.stdout.write(`tenant ${tenant} (${value.tenantId})\nkey id ${value.id}\n\n${value.key}\n\nShown once: store it now.\n`);
    } else if (action === "list") {
      if (!values.tenant) throw new UsageError("keys list needs --tenant NAME");
      const tenant = values.tenant;
      const value = await adminTransaction(app, async (tx) => listApiKeys(tx, await ensureTenant(tx, tenant)));
      for (const k of value) {
        process.stdout.write(`${k.id}  pgr_${k.prefix}_…  ${k.name}  [${k.scopes.join(",")}]  ${k.revoked_at ? `revoked ${k.revoked_at.toISOString()}` : "active"}\n`);
      }
    } else if (action === "revoke") {
      if (!keyId) throw new UsageError("keys revoke needs the key id (see keys list)");
      const value = await adminTransaction(app, (tx) => revokeApiKey(tx, keyId));
      if (!value) throw new Error(`no active key ${keyId}`);
      process.stdout.write(`revoked ${keyId}\n`);
    } else {
      throw new UsageError("keys takes create, list or revoke");
    }
  } finally {
    await app.stop();
  }
}

async function runEval(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      dataset: { type: "string" },
      split: { type: "string", default: "train" },
      modes: { type: "string", default: "bm25,vector,hybrid" },
      limit: { type: "string" },
    },
  });
  const modes = values.modes.split(",").map((m) => m.trim());
  const bad = modes.filter((m) => !["hybrid", "vector", "bm25"].includes(m));
  if (bad.length > 0) throw new UsageError(`--modes takes hybrid, vector, bm25; not ${bad.join(", ")}`);
  const app = createApp(loadConfig({ PGRAG_LOG_LEVEL: "warn", ...process.env }));
  await app.start({ listen: false });
  try {
    const results = await evaluateBeir(app, {
      dataset: values.dataset ?? SCIFACT_DIR,
      split: values.split,
      modes: modes as SearchMode[],
      ...(values.limit ? { queryLimit: Number(values.limit) } : {}),
      log: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write("                           quality (k=200)         latency k=10       latency k=200\n");
    process.stdout.write("mode     queries  nDCG@10  Recall@100      p50 ms  p95 ms     p50 ms  p95 ms\n");
    const ms = (value: number) => value.toFixed(1).padStart(6);
    for (const r of results) {
      process.stdout.write(
        `${r.mode.padEnd(8)} ${String(r.queries).padStart(7)}  ${r.ndcg10.toFixed(4)}   ${r.recall100.toFixed(4)}      ${ms(r.p50Ms)}  ${ms(r.p95Ms)}     ${ms(r.deepP50Ms)}  ${ms(r.deepP95Ms)}\n`,
      );
    }
    process.stdout.write("(k=10 is the API's default query, its embedding included; the k=200 pass finds query embeddings cached)\n");
  } finally {
    await app.stop();
  }
}

async function runDevInference(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { port: { type: "string", default: "8081" }, host: { type: "string", default: "127.0.0.1" } },
  });
  const config = loadConfig({ PGRAG_PRIMARY_URL: "postgres://unused/unused", ...process.env });
  const server = await startDevInferenceServer({
    host: values.host,
    port: Number(values.port),
    dimension: config.embedding.dimension,
    embeddingModel: config.embedding.model,
    chatModel: config.inference.chatModel,
  });
  process.stdout.write(
    `dev inference server at ${server.url} (embeddings: ${config.embedding.model}/${config.embedding.dimension}, chat: ${config.inference.chatModel})\n`,
  );
  await untilSignal({ info: () => {} });
  await server.close();
}

async function runMigrate(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { count: { type: "string" } },
  });
  const direction = positionals[0] ?? "up";
  if (direction !== "up" && direction !== "down")
    throw new UsageError(`migrate takes "up" or "down", not "${direction}"`);
  const count = values.count === undefined ? undefined : Number(values.count);
  if (count !== undefined && (!Number.isInteger(count) || count < 1))
    throw new UsageError("--count takes a whole number ≥ 1");
  const config = loadConfig();
  const embedded = config.database.embedded ? await startEmbeddedDatabase(config.database.embedded) : undefined;
  const applied = await migrate(config, createLogger(config), {
    direction,
    ...(count === undefined ? {} : { count }),
  });
  await embedded?.stop();
  process.stdout.write(applied.length ? `${direction}: ${applied.join(", ")}\n` : "no migrations to run\n");
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  switch (command) {
    case "serve":
      return serve(true);
    case "worker":
      return serve(false);
    case "keys":
      return runKeys(rest);
    case "ingest":
      return runIngest(rest);
    case "ask":
      return runAsk(rest);
    case "eval":
      return runEval(rest);
    case "dev-inference":
      return runDevInference(rest);
    case "migrate":
      return runMigrate(rest);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

try {
  await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError) {
    process.stderr.write(`pgrag: ${error.message}\n\n${USAGE}\n`);
    process.exitCode = 2;
  } else if (error instanceof AppError) {
    process.stderr.write(`pgrag: ${error.message}\n`);
    process.exitCode = 1;
  } else if (error instanceof ConfigError) {
    process.stderr.write(`pgrag: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`pgrag: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}
