import type { Kysely } from "kysely";
import type { Config } from "../config.ts";
import type { Database } from "./database.ts";

export class EmbeddingSettingsMismatchError extends Error {
  override readonly name = "EmbeddingSettingsMismatchError";
}

/**
 * Vectors of different models or dimensions must never be mixed in one index: the start-up refuses a
 * config that disagrees with what the database was migrated with.
 */
export async function assertEmbeddingSettings(
  db: Kysely<Database>,
  expected: Pick<Config["embedding"], "model" | "dimension" | "indexType">,
): Promise<void> {
  const recorded = await db
    .selectFrom("embedding_settings")
    .select(["model", "dimension", "index_type"])
    .executeTakeFirst();
  if (!recorded) {
    throw new EmbeddingSettingsMismatchError(
      "the database has no recorded embedding settings: run the migrations first (npm run migrate)",
    );
  }
  if (recorded.model !== expected.model || recorded.dimension !== expected.dimension) {
    throw new EmbeddingSettingsMismatchError(
      `embedding settings mismatch: the database holds vectors of model "${recorded.model}" with dimension ${recorded.dimension}, ` +
        `but PGRAG_EMBEDDING_MODEL="${expected.model}" and PGRAG_EMBEDDING_DIM=${expected.dimension}. ` +
        "Set them back to the recorded values, or re-embed into a new database.",
    );
  }
  if (recorded.index_type !== expected.indexType) {
    throw new EmbeddingSettingsMismatchError(
      `vector index mismatch: the database was migrated with a ${recorded.index_type} HNSW index, but PGRAG_VECTOR_INDEX resolves to ${expected.indexType}. ` +
        `Set PGRAG_VECTOR_INDEX=${recorded.index_type}, or migrate a new database with the new choice.`,
    );
  }
}
