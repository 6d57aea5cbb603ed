import { createHash, randomBytes } from "node:crypto";
import { type Kysely, sql } from "kysely";
import type { Database } from "../db/database.ts";
import type { Principal, Scope } from "./principal.ts";

const KEY_PATTERN = /^pgr_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{32,})$/;

/** Keys look like pgr_<8-char prefix>_<secret>; only a SHA-256 of the whole key is stored. */
export function hashApiKey(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}

export function isWellFormedApiKey(key: string): boolean {
  return KEY_PATTERN.test(key);
}

function newKey(): { key: string; prefix: string } {
  const prefix = randomBytes(6).toString("base64url").replace(/[-_]/g, "x").slice(0, 8);
  return { key: `pgr_${prefix}_${randomBytes(24).toString("base64url")}`, prefix };
}

export async function ensureTenant(db: Kysely<Database>, name: string): Promise<string> {
  const existing = await db.selectFrom("tenants").select("id").where("name", "=", name).executeTakeFirst();
  if (existing) return existing.id;
  const created = await db
    .insertInto("tenants")
    .values({ name })
    .onConflict((oc) => oc.column("name").doUpdateSet({ name }))
    .returning("id")
    .executeTakeFirstOrThrow();
  return created.id;
}

/** Creates a key; the clear key is returned once and never stored. */
export async function createApiKey(
  db: Kysely<Database>,
  input: { tenantId: string; name: string; scopes: readonly Scope[]; principals?: readonly string[] | null },
): Promise<{ id: string; key: string; prefix: string }> {
  const { key, prefix } = newKey();
  const row = await db
    .insertInto("api_keys")
    .values({
      tenant_id: input.tenantId,
      name: input.name,
      prefix,
      secret_hash: hashApiKey(key),
      scopes: [...input.scopes],
      principals: input.principals ? [...input.principals] : null,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return { id: row.id, key, prefix };
}

/**
 * Resolves a key through pgrag_authenticate, a SECURITY DEFINER function: under row-level security
 * the application role sees no api_keys row before it knows the tenant.
 */
export async function findActiveKey(db: Kysely<Database>, key: string): Promise<Principal | undefined> {
  const { rows } = await sql<{ tenant_id: string; key_id: string; scopes: string[]; principals: string[] | null }>`
    SELECT tenant_id, key_id, scopes, principals FROM pgrag_authenticate(${hashApiKey(key)})
  `.execute(db);
  const row = rows[0];
  return (
    row && {
      tenantId: row.tenant_id,
      keyId: row.key_id,
      scopes: row.scopes as Scope[],
      principals: row.principals,
      owner: row.principals ? `key:${row.key_id}` : null,
    }
  );
}

/** Tenant and key administration below runs as the schema owner (the admin CLI), not as the app role. */
export async function listApiKeys(db: Kysely<Database>, tenantId: string) {
  return db
    .selectFrom("api_keys")
    .select(["id", "name", "prefix", "scopes", "principals", "created_at", "revoked_at"])
    .where("tenant_id", "=", tenantId)
    .orderBy("created_at")
    .execute();
}

export async function revokeApiKey(db: Kysely<Database>, keyId: string): Promise<boolean> {
  const result = await db
    .updateTable("api_keys")
    .set({ revoked_at: new Date() })
    .where("id", "=", keyId)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
