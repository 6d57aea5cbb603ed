import type { Kysely } from "kysely";
import type { App } from "../app.ts";
import type { Database } from "../db/database.ts";
import { closeDbNode } from "../db/pools.ts";
import { createAdminDbNode } from "./admin-db.ts";

/**
 * Runs tenant and key administration as the schema owner. The embedded database has one session and
 * one (super)user, so there it goes through the app's own connection instead of a second one.
 */
export async function adminTransaction<T>(app: App, work: (tx: Kysely<Database>) => Promise<T>): Promise<T> {
  if (app.config.database.embedded) return (await app.router.write(work)).value;
  const admin = createAdminDbNode(app.config);
  try {
    return await admin.db.transaction().execute(work);
  } finally {
    await closeDbNode(admin);
  }
}
