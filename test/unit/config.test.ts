import { describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { configTable } from "../../src/cli/config.command.ts";
import { CONFIG_VARIABLES, ConfigError, configReference, loadConfig } from "../../src/config.ts";
import { defaultBinaryOversampling } from "../../src/retrieval/search.repository.ts";
import { vectorIndexOf } from "../../src/retrieval/search.service.ts";

const minimal = { PGRAG_PRIMARY_URL: "postgres://app:secret@127.0.0.1:6432/primary" };

describe("loadConfig", () => {
  it("applies defaults and freezes the result", () => {
    const config = loadConfig(minimal);
    expect(config.http.port).toBe(8080);
    expect(config.database.replicaUrls).toEqual([]);
    expect(config.database.migrationUrl).toBe(minimal.PGRAG_PRIMARY_URL);
    expect(config.embedding).toMatchObject({ model: "pgrag-dev-hash", dimension: 384 });
    expect(Object.isFrozen(config.routing)).toBe(true);
  });

  it("re-ranks more binary candidates the fewer bits the codes have, unless told how many", () => {
    expect([128, 384, 1_536, 4_096, 32].map(defaultBinaryOversampling)).toEqual([50, 17, 5, 4, 100]);
    const binary = { ...minimal, PGRAG_EMBEDDING_DIM: "128", PGRAG_VECTOR_INDEX: "binary" };
    expect(vectorIndexOf(loadConfig(binary)).binaryOversampling).toBeUndefined();
    expect(vectorIndexOf(loadConfig({ ...binary, PGRAG_BINARY_OVERSAMPLING: "7" })).binaryOversampling).toBe(7);
  });

  it("never has more ingestion writers than fetch loops", () => {
    expect(loadConfig(minimal).ingest).toMatchObject({ workerConcurrency: 4, workerWriters: 2 });
    expect(loadConfig({ ...minimal, PGRAG_WORKER_CONCURRENCY: "1" }).ingest.workerWriters).toBe(1);
    expect(
      loadConfig({ ...minimal, PGRAG_WORKER_CONCURRENCY: "8", PGRAG_WORKER_WRITERS: "3" }).ingest.workerWriters,
    ).toBe(3);
  });

  it("lets the console send prompts only to engines on this machine", () => {
    const origins = (value: string) =>
      loadConfig({ ...minimal, PGRAG_CONSOLE_ENGINE_ORIGINS: value }).http.consoleEngineOrigins;
    expect(origins("http://127.0.0.1:11434 http://localhost:1234")).toEqual([
      "http://127.0.0.1:11434",
      "http://localhost:1234",
    ]);
    expect(() => origins("https://engine.example.com:443")).toThrow(ConfigError);
    expect(() => origins("http://127.0.0.1:11434/v1")).toThrow(/an origin on this machine/);
  });

  it("listens on PORT when given, and on PGRAG_PORT when both are", () => {
    expect(loadConfig({ ...minimal, PORT: "3000" }).http.port).toBe(3000);
    expect(loadConfig({ ...minimal, PORT: "3000", PGRAG_PORT: "4000" }).http.port).toBe(4000);
  });

  it("falls back to the embedded database, with one connection, when no database URL is given", () => {
    const config = loadConfig({});
    const socketDir = resolve(".pgrag/socket");
    expect(config.database.embedded).toEqual({ dataDir: ".pgrag/data", port: 5499, socketDir });
    // A Unix socket directory as the host, never a TCP address.
    expect(config.database.primaryUrl).toBe(
      `postgres://postgres:postgres@localhost:5499/postgres?host=${encodeURIComponent(socketDir)}`,
    );
    expect(config.database.poolSize).toBe(1);
    expect(loadConfig(minimal).database.embedded).toBeNull();
  });

  it("treats the embedded database as one busy node, not a failing one: patient probes, short writes", () => {
    const embedded = loadConfig({});
    expect(embedded.routing.monitor.probeTimeoutMs).toBe(60_000);
    expect(embedded.ingest.workerBatchSize).toBe(8);
    const cluster = loadConfig(minimal);
    expect(cluster.routing.monitor.probeTimeoutMs).toBe(1_000);
    expect(cluster.ingest.workerBatchSize).toBe(256);
  });

  it("refuses replicas without a primary, naming the variable", () => {
    expect(() => loadConfig({ PGRAG_REPLICA_URLS: "postgres://a@127.0.0.1:6432/replica1" })).toThrow(ConfigError);
    expect(() => loadConfig({ PGRAG_REPLICA_URLS: "postgres://a@127.0.0.1:6432/replica1" })).toThrow(
      /PGRAG_REPLICA_URLS: replicas need PGRAG_PRIMARY_URL/,
    );
  });

  it("has no rerank stage unless a reranker model is named, and refuses a reranker URL without one", () => {
    expect(loadConfig({}).rerank).toBeNull();
    expect(loadConfig({ PGRAG_RERANK_MODEL: "bge-reranker" }).rerank).toMatchObject({
      model: "bge-reranker",
      url: null,
      api: "rerank",
      candidates: 50,
      timeoutMs: 2_000,
    });
    expect(() => loadConfig({ PGRAG_RERANK_URL: "http://127.0.0.1:7997" })).toThrow(
      /PGRAG_RERANK_URL: a reranker needs PGRAG_RERANK_MODEL/,
    );
  });

  it("names every malformed variable at once", () => {
    let message = "";
    try {
      loadConfig({
        ...minimal,
        PGRAG_PORT: "eighty",
        PGRAG_REPLICA_URLS: "mysql://x/y",
        PGRAG_READ_FALLBACK_TO_PRIMARY: "perhaps",
      });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/PGRAG_PORT/);
    expect(message).toMatch(/PGRAG_REPLICA_URLS\.0: must be a postgres:\/\/ URL/);
    expect(message).toMatch(/PGRAG_READ_FALLBACK_TO_PRIMARY/);
  });

  it("reads an env file, letting the environment win", () => {
    expect(() => loadConfig({ PGRAG_ENV_FILE: "/nonexistent/pgrag.env" })).toThrow(/PGRAG_ENV_FILE: file not found/);
  });

  it("is documented: docs/configuration.md's table is the one generated from the schema", () => {
    const page = readFileSync(fileURLToPath(new URL("../../docs/configuration.md", import.meta.url)), "utf8");
    const start = page.indexOf("<!-- config-table:start (npm run docs:config) -->");
    const end = page.indexOf("<!-- config-table:end -->");
    expect(start, "docs/configuration.md needs the config-table markers").toBeGreaterThanOrEqual(0);
    expect(end, "docs/configuration.md needs the config-table markers").toBeGreaterThan(start);
    const block = page.slice(start, end);
    expect(block.split("\n").slice(1).join("\n").trim(), "run npm run docs:config").toBe(configTable());
    const reference = configReference();
    expect(reference.map((v) => v.name)).toEqual(CONFIG_VARIABLES);
    expect(reference.filter((v) => v.description === "").map((v) => v.name)).toEqual([]);
    expect(reference.find((v) => v.name === "PGRAG_POOL_SIZE")?.default).toBe("10");
  });
});
