import { fileURLToPath } from "node:url";
import { runner } from "node-pg-migrate";
import pg from "pg";
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";

const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations", import.meta.url));

export interface MigrateOptions {
  readonly direction?: "up" | "down";
  /** How many migrations to apply or revert; all pending (up) or one (down) by default. */
  readonly count?: number;
}

/**
 * Runs node-pg-migrate against the primary over a direct connection (its advisory lock is
 * session-level, which PgBouncer's transaction pooling would break). Replicas receive the changes
 * through replication. The embedding model and dimension are handed to the migrations as session
 * settings, so the SQL records exactly what the config says.
 */
export async function migrate(
  config: Pick<Config, "database" | "embedding" | "analytics">,
  logger: Logger,
  options: MigrateOptions = {},
): Promise<string[]> {
  const client = new pg.Client({
    connectionString: config.database.migrationUrl,
    application_name: "pgrag:migrate",
  });
  await client.connect();
  try {
    await client.query(
      `SELECT set_config('pgrag.embedding_model', $1, false), set_config('pgrag.embedding_dimension', $2, false),
              set_config('pgrag.analyst_statement_timeout', $3, false), set_config('pgrag.vector_index', $4, false)`,
      [
        config.embedding.model,
        String(config.embedding.dimension),
        `${config.analytics.analystStatementTimeoutMs}ms`,
        config.embedding.indexType,
      ],
    );
    const direction = options.direction ?? "up";
    const applied = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction,
      count: options.count ?? (direction === "up" ? Number.POSITIVE_INFINITY : 1),
      migrationsTable: "pgmigrations",
      checkOrder: true,
      // node-pg-migrate narrates every step (and prints each migration's SQL): that goes to debug,
      // and one summary line to info below.
      logger: {
        debug: () => {},
        info: (message: string) => logger.debug({ migrate: direction }, message.trim()),
        // Migrations that run outside a transaction (pg-boss's own plan, CONCURRENTLY) do so on purpose.
        warn: (message: string) =>
          /not wrapped in a transaction/.test(message)
            ? logger.debug({ migrate: direction }, message.trim())
            : logger.warn({ migrate: direction }, message.trim()),
        error: (message: string) => logger.error({ migrate: direction }, message.trim()),
      },
    });
    const names = applied.map((m) => m.name);
    logger.info(
      applied.length === 0
        ? "migrations: up to date"
        : `migrations: ${direction} ${names.length} (${names.length > 2 ? `${names[0]} … ${names.at(-1)}` : names.join(", ")})`,
    );
    if (config.analytics.analystPassword && direction === "up") {
      // ALTER ROLE takes no bind parameters: the password travels as a setting and is quoted by format().
      await client.query("SELECT set_config('pgrag.analyst_password', $1, false)", [config.analytics.analystPassword]);
      await client.query(
        "DO $$ BEGIN EXECUTE format('ALTER ROLE pgrag_analyst LOGIN PASSWORD %L', current_setting('pgrag.analyst_password')); END $$",
      );
      await client.query("SELECT set_config('pgrag.analyst_password', '', false)");
    }
    return applied.map((m) => m.name);
  } finally {
    await client.end();
  }
}
