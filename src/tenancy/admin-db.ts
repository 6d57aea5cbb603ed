import type { Config } from "../config.ts";
import { createDbNode, type DbNode } from "../db/pools.ts";

/**
 * A connection as the schema owner (PGRAG_MIGRATION_URL), which row-level security does not bind:
 * for administration across tenants (creating tenants and keys), never for serving requests.
 */
export function createAdminDbNode(config: Pick<Config, "database">): DbNode {
  return createDbNode("admin", "primary", config.database.migrationUrl, { size: 2, applicationName: "pgrag-admin" });
}
