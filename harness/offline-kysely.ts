import {
  DummyDriver,
  Kysely,
  type KyselyConfig,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
} from "kysely";
import type { Database } from "../src/db/database.ts";

/**
 * Kysely for PostgreSQL without a connection: queries compile (and `log` sees them) but never run.
 * For checking the SQL a query function builds, or recording it to replay elsewhere.
 */
export function offlineKysely(log?: KyselyConfig["log"]): Kysely<Database> {
  return new Kysely<Database>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new PostgresIntrospector(db),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
    ...(log ? { log } : {}),
  });
}
