import { randomUUID } from "node:crypto";
import type { App } from "../../src/app.ts";
import type { ConsistencyToken } from "../../src/db/consistency-token.ts";

/**
 * The routing tests' write and read: a new collection row of a tenant, written on the primary under
 * row-level security (with the write's consistency token), and read back through the router.
 */
export async function writeCollectionRow(app: App, tenantId: string): Promise<{ id: string; token: ConsistencyToken }> {
  const { value, token } = await app.router.write({ tenantId }, (tx) =>
    tx
      .insertInto("collections")
      .values({ tenant_id: tenantId, name: `c-${randomUUID()}` })
      .returning("id")
      .executeTakeFirstOrThrow(),
  );
  return { id: value.id, token };
}

export function readCollectionRow(app: App, tenantId: string, id: string, token: ConsistencyToken | null) {
  return app.router.read({ token, tenantId }, (db) =>
    db.selectFrom("collections").select("id").where("id", "=", id).executeTakeFirst(),
  );
}
