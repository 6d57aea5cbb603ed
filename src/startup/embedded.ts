import type { Config } from "../config.ts";
import { startEmbeddedDatabase } from "../db/embedded.ts";
import { migrate } from "../db/migrate.ts";
import type { DbNode } from "../db/pools.ts";
import type { Releasers } from "../lifecycle.ts";
import type { Logger } from "../logger.ts";
import { ensureDevApiKey } from "../tenancy/dev-key.ts";

/**
 * The embedded default exists for trying pgrag: it starts its database, migrates itself and hands
 * out the key of tenant "default" (returned; it stays out of the logs, which are shipped and kept).
 */
export async function startEmbedded(
  embedded: NonNullable<Config["database"]["embedded"]>,
  config: Config,
  primary: DbNode,
  releasers: Releasers,
  logger: Logger,
): Promise<string> {
  const database = await startEmbeddedDatabase(embedded);
  releasers.push("embedded database", () => database.stop());
  await migrate(config, logger);
  const key = await ensureDevApiKey(primary.db, embedded.dataDir);
  logger.warn(
    { dataDir: embedded.dataDir },
    "embedded PostgreSQL (PGlite): for trying and developing only; set PGRAG_PRIMARY_URL (replicas/ or docker compose) for the real topology",
  );
  return key;
}
