import { parseArgs } from "node:util";
import { createApp } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { migrate } from "./db/migrate.ts";
import { createLogger } from "./logger.ts";

const USAGE = `pgrag — retrieval-augmented generation on PostgreSQL

Usage: pgrag <command> [options]

Commands:
  serve                 run the HTTP API until SIGINT/SIGTERM
  migrate [up|down]     apply pending migrations (up) or revert the last one (down)
      --count N         how many migrations to apply or revert

Configuration comes from PGRAG_* environment variables (see README), or from the env file named
by PGRAG_ENV_FILE.`;

class UsageError extends Error {}

async function serve(): Promise<void> {
  const app = createApp(loadConfig());
  try {
    await app.start();
  } catch (error) {
    app.logger.fatal({ err: error }, `start-up failed: ${(error as Error).message}`);
    await app.stop();
    process.exitCode = 1;
    return;
  }
  await new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.once(signal, () => {
        app.logger.info({ signal }, "shutting down");
        resolve();
      });
    }
  });
  await app.stop();
}

async function runMigrate(args: string[]): Promise<void> {
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
  const applied = await migrate(config, createLogger(config), {
    direction,
    ...(count === undefined ? {} : { count }),
  });
  process.stdout.write(applied.length ? `${direction}: ${applied.join(", ")}\n` : "no migrations to run\n");
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  switch (command) {
    case "serve":
      return serve();
    case "migrate":
      return runMigrate(rest);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

try {
  await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError) {
    process.stderr.write(`pgrag: ${error.message}\n\n${USAGE}\n`);
    process.exitCode = 2;
  } else if (error instanceof ConfigError) {
    process.stderr.write(`pgrag: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`pgrag: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}
