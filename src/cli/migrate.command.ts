import { parseArgs } from "node:util";
import { loadConfig } from "../config.ts";
import { startEmbeddedDatabase } from "../db/embedded.ts";
import { migrate } from "../db/migrate.ts";
import { createLogger } from "../logger.ts";
import { UsageError } from "./usage.ts";

/** `pgrag migrate [up|down] [--count N]` over the owner's direct connection. */
export async function runMigrate(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { count: { type: "string" } },
  });
  const direction = positionals[0] ?? "up";
  if (direction !== "up" && direction !== "down")
    throw new UsageError(`migrate takes "up" or "down", not "${direction}"`);
  const count = values.count === undefined ? undefined : Number(values.count);
  if (count !== undefined && (!Number.isInteger(count) || count < 1))
    throw new UsageError("--count takes a whole number ≥ 1");
  const config = loadConfig();
  const embedded = config.database.embedded ? await startEmbeddedDatabase(config.database.embedded) : undefined;
  const applied = await migrate(config, createLogger(config), {
    direction,
    ...(count === undefined ? {} : { count }),
  });
  await embedded?.stop();
  process.stdout.write(applied.length ? `${direction}: ${applied.join(", ")}\n` : "no migrations to run\n");
}
