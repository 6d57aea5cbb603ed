import { type App, createApp } from "../app.ts";
import { type Config, loadConfig } from "../config.ts";
import type { Principal } from "../tenancy/principal.ts";
import { principalFor } from "./tenant-principal.ts";

/**
 * Runs a one-off command against the platform in this process (no HTTP server, no workers), as
 * the tenant named, and stops it again however the command ends.
 */
export async function withCliApp<T>(
  tenant: string,
  work: (app: App, principal: Principal, config: Config) => Promise<T>,
): Promise<T> {
  const config = loadConfig({
    ...process.env,
    PGRAG_WORKER_CONCURRENCY: "0",
    PGRAG_LOG_LEVEL: process.env.PGRAG_LOG_LEVEL ?? "warn",
  });
  const app = createApp(config);
  await app.start({ listen: false });
  try {
    return await work(app, await principalFor(app, tenant), config);
  } finally {
    await app.stop();
  }
}
