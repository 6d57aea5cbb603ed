import type { Kysely } from "kysely";
import type { Config } from "../config.ts";
import type { Database } from "../db/database.ts";
import { closeDbNode } from "../db/pools.ts";
import type { Router } from "../db/router.ts";
import { createAdminDbNode } from "./admin-db.ts";

/**
 * Runs tenant and key administration as the schema owner. The embedded database has one session and
 * one (super)user, so there it goes through the app's own connection instead of a second one.
 */
export async function adminTransaction<T>(
  platform: { readonly config: Config; readonly router: Router },
  work: (tx: Kysely<Database>) => Promise<T>,
): Promise<T> {
  if (platform.config.database.embedded) return (await platform.router.write({}, work)).value;
  return ownerTransaction(platform.config, work);
}

/** One transaction on a connection of its own as the schema owner, closed afterwards. */
export async function ownerTransaction<T>(
  config: Pick<Config, "database">,
  work: (tx: Kysely<Database>) => Promise<T>,
): Promise<T> {
  const admin = createAdminDbNode(config);
  try {
    return await admin.db.transaction().execute(work);
  } finally {
    await closeDbNode(admin);
  }
}
