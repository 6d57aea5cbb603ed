import { randomUUID } from "node:crypto";
import { readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../../src/app.ts";
import { type Config, loadConfig } from "../../../src/config.ts";
import { assertEmbeddingSettings } from "../../../src/db/embedding-settings.ts";
import { migrate } from "../../../src/db/migrate.ts";
import { createDbNode } from "../../../src/db/pools.ts";
import { createLogger } from "../../../src/logger.ts";
import { adminQuery, TEST_ENV_FILE } from "../../helpers/cluster.ts";

const logger = createLogger({ logLevel: "silent" });
// A database of its own on the test primary, so going down does not disturb other files.
const database = `pgrag_migrations_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
const base = loadConfig({ PGRAG_ENV_FILE: TEST_ENV_FILE, PGRAG_LOG_LEVEL: "silent" });
const migrationUrl = new URL(base.database.migrationUrl);
migrationUrl.pathname = `/${database}`;

function configFor(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    PGRAG_ENV_FILE: TEST_ENV_FILE,
    PGRAG_LOG_LEVEL: "silent",
    PGRAG_MIGRATION_URL: migrationUrl.toString(),
    // The app's own connections go straight to the new database as its owner.
    PGRAG_PRIMARY_URL: migrationUrl.toString(),
    PGRAG_REPLICA_URLS: "",
    ...overrides,
  });
}

async function publicTables(): Promise<string[]> {
  const rows = await adminQuery<{ t: string }>(
    "primary",
    "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables WHERE table_schema IN ('public', 'analytics') AND table_name <> 'pgmigrations' ORDER BY 1",
    [],
    database,
  );
  return rows.map((r) => r.t);
}

beforeAll(async () => {
  await adminQuery("primary", `CREATE DATABASE ${database} OWNER pgrag`, [], "postgres");
  await adminQuery("primary", "CREATE EXTENSION vector", [], database);
});
afterAll(async () => {
  await adminQuery("primary", `DROP DATABASE ${database} WITH (FORCE)`, [], "postgres");
});

describe("migrations", () => {
  it("go up, all the way down, and up again", async () => {
    const config = configFor();
    const first = await migrate(config, logger);
    const files = await readdir(fileURLToPath(new URL("../../../migrations", import.meta.url)));
    expect(first).toEqual(files.map((f) => f.replace(/\.js$/, "")).sort());
    const tablesAfterUp = await publicTables();
    expect(tablesAfterUp).toEqual(
      expect.arrayContaining(["public.chunks", "public.documents", "public.api_keys", "analytics.events"]),
    );

    const reverted = await migrate(config, logger, { direction: "down", count: first.length });
    expect(reverted).toEqual([...first].reverse());
    expect(await publicTables()).toEqual([]);

    expect(await migrate(config, logger)).toEqual(first);
    expect(await publicTables()).toEqual(tablesAfterUp);
    const index = await adminQuery(
      "primary",
      "SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw_idx'",
      [],
      database,
    );
    expect(index[0]?.indexdef).toMatch(/USING hnsw \(embedding vector_cosine_ops\)/);
  });

  it("record the configured embedding model and dimension in the vector column", async () => {
    const rows = await adminQuery(
      "primary",
      "SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'",
      [],
      database,
    );
    expect(rows[0]?.type).toBe(`vector(${base.embedding.dimension})`);
  });

  it("refuse to start with a different embedding dimension, model or vector index, naming both", async () => {
    const node = createDbNode("primary", "primary", migrationUrl.toString(), {
      size: 1,
      applicationName: "test",
    });
    try {
      const recorded = { model: base.embedding.model, dimension: 384, indexType: "vector" } as const;
      await expect(assertEmbeddingSettings(node.db, { ...recorded, dimension: 768 })).rejects.toThrow(
        /dimension 384.*PGRAG_EMBEDDING_DIM=768/,
      );
      await expect(assertEmbeddingSettings(node.db, { ...recorded, model: "text-embedding-3-small" })).rejects.toThrow(
        /model "pgrag-dev-hash".*PGRAG_EMBEDDING_MODEL="text-embedding-3-small"/,
      );
      await expect(assertEmbeddingSettings(node.db, { ...recorded, indexType: "halfvec" })).rejects.toThrow(
        /migrated with a vector HNSW index, but PGRAG_VECTOR_INDEX resolves to halfvec/,
      );
    } finally {
      await node.db.destroy();
    }
    const app = createApp(configFor({ PGRAG_EMBEDDING_DIM: "768" }), { logger });
    await expect(app.start({ listen: false })).rejects.toThrow(/embedding settings mismatch/);
    await app.stop();
  });
});
