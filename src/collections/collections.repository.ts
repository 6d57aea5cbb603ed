import { type Kysely, sql } from "kysely";
import type { CollectionRow, Database } from "../db/database.ts";
import { NotFoundError } from "../errors.ts";
import { type ChunkingOptions, DEFAULT_CHUNKING } from "../text/chunking.ts";

export interface Collection {
  readonly id: string;
  readonly name: string;
  readonly language: string;
  readonly chunking: ChunkingOptions;
  readonly createdAt: Date;
}

export function rowToCollection(row: CollectionRow): Collection {
  const settings = (row.settings ?? {}) as { chunking?: Partial<ChunkingOptions> };
  return {
    id: row.id,
    name: row.name,
    language: row.language,
    chunking: { ...DEFAULT_CHUNKING, ...settings.chunking },
    createdAt: row.created_at,
  };
}

/**
 * Deletes a collection with everything in it — documents, chunks, postings, statistics, imports by
 * cascade, and its conversations — in the caller's transaction. Returns how many documents went.
 * A partition of its own stays, empty: dropping it would lock the parent table of every tenant.
 */
export async function deleteCollection(db: Kysely<Database>, collectionId: string): Promise<number> {
  await sql`DELETE FROM conversations WHERE collection_id = ${collectionId}::uuid`.execute(db);
  const { rows } = await sql<{ documents: number }>`
    WITH gone AS (DELETE FROM collections WHERE id = ${collectionId}::uuid RETURNING id)
    SELECT (SELECT count(*)::int FROM documents d WHERE d.collection_id = ${collectionId}::uuid) AS documents FROM gone
  `.execute(db);
  return rows[0]?.documents ?? 0;
}

export async function insertCollection(
  db: Kysely<Database>,
  input: { tenantId: string; name: string; language: string; chunking: ChunkingOptions },
): Promise<Collection | undefined> {
  const row = await db
    .insertInto("collections")
    .values({
      tenant_id: input.tenantId,
      name: input.name,
      language: input.language,
      settings: JSON.stringify({ chunking: input.chunking }),
    })
    .onConflict((oc) => oc.columns(["tenant_id", "name"]).doNothing())
    .returningAll()
    .executeTakeFirst();
  return row && rowToCollection(row);
}

export async function findCollection(
  db: Kysely<Database>,
  tenantId: string,
  name: string,
): Promise<Collection | undefined> {
  const row = await db
    .selectFrom("collections")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("name", "=", name)
    .executeTakeFirst();
  return row && rowToCollection(row);
}

export async function listCollections(db: Kysely<Database>, tenantId: string): Promise<Collection[]> {
  const rows = await db
    .selectFrom("collections")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .orderBy("name")
    .execute();
  return rows.map(rowToCollection);
}

export async function textSearchConfigExists(db: Kysely<Database>, name: string): Promise<boolean> {
  const { rows } = await sql<{ found: boolean }>`
    SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = ${name}) AS found
  `.execute(db);
  return rows[0]?.found === true;
}

/**
 * Holds the collection's key for the transaction (FOR KEY SHARE): a delete of the collection, or of
 * its tenant, waits for the transaction instead of deadlocking with it. A delete takes the collection
 * row, then (by cascade) its documents and postings blocks; a write that locks documents or blocks and
 * then inserts blocks, whose key check needs this same row, takes it first: ingestion and compaction
 * do. False when the collection is gone.
 */
export async function holdCollection(db: Kysely<Database>, collectionId: string): Promise<boolean> {
  const row = await db
    .selectFrom("collections")
    .select("id")
    .where("id", "=", collectionId)
    .forKeyShare()
    .executeTakeFirst();
  return row !== undefined;
}

/** The tenant's collection of this name, or a 404 that says how to create it. */
export async function requireCollection(db: Kysely<Database>, tenantId: string, name: string): Promise<Collection> {
  const collection = await findCollection(db, tenantId, name);
  if (!collection) {
    // A typo is the likeliest cause: name the ones there are.
    const names = await db
      .selectFrom("collections")
      .select("name")
      .where("tenant_id", "=", tenantId)
      .orderBy("name")
      .limit(11)
      .execute();
    const known =
      names.length === 0
        ? "none yet"
        : `${names
            .slice(0, 10)
            .map((n) => `"${n.name}"`)
            .join(", ")}${names.length > 10 ? ", …" : ""}`;
    throw new NotFoundError(`no collection "${name}" (this tenant has ${known}); create it with POST /v1/collections`);
  }
  return collection;
}

/** Last statement of a write transaction: the stats row is the one hot row ingestion shares. */
export async function adjustCollectionStats(
  db: Kysely<Database>,
  collectionId: string,
  tenantId: string,
  chunkDelta: number,
  lengthDelta: number,
): Promise<void> {
  if (chunkDelta === 0 && lengthDelta === 0) return;
  await sql`
    INSERT INTO collection_stats AS s (collection_id, tenant_id, chunk_count, total_length)
    VALUES (${collectionId}, ${tenantId}, greatest(${chunkDelta}::bigint, 0), greatest(${lengthDelta}::bigint, 0))
    ON CONFLICT (collection_id) DO UPDATE
      SET chunk_count = s.chunk_count + ${chunkDelta}::bigint,
          total_length = s.total_length + ${lengthDelta}::bigint
  `.execute(db);
}

/** The collection's average chunk length in lexemes (compaction sorts postings by weight with it). */
export async function averageLength(db: Kysely<Database>, collectionId: string): Promise<number> {
  const row = await db
    .selectFrom("collection_stats")
    .select(["chunk_count", "total_length"])
    .where("collection_id", "=", collectionId)
    .executeTakeFirst();
  const n = Number(row?.chunk_count ?? 0);
  return n > 0 ? Number(row?.total_length ?? 0) / n : 1;
}
