import { rm } from "node:fs/promises";
import { loadConfig } from "../../src/config.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createLogger } from "../../src/logger.ts";
import { cluster, TEST_CLUSTER, TEST_ENV_FILE } from "./cluster.ts";

/** Brings a fresh native topology up once per run, migrates it, and takes it down at the end. */
export default async function setup(): Promise<() => Promise<void>> {
  await cluster("down").catch(() => "");
  await rm(TEST_CLUSTER.dir, { recursive: true, force: true });
  await cluster("up", "--replicas", String(TEST_CLUSTER.replicas));
  // A short analyst statement timeout, so the runaway-query test does not wait half a minute.
  const config = loadConfig({ PGRAG_ENV_FILE: TEST_ENV_FILE, PGRAG_ANALYST_STATEMENT_TIMEOUT_MS: "3000" });
  await migrate(config, createLogger({ logLevel: "error" }));
  return async () => {
    await cluster("down");
  };
}
