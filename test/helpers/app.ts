import { afterAll } from "vitest";
import { type App, createApp } from "../../src/app.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { TEST_ENV_FILE } from "./cluster.ts";

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ PGRAG_ENV_FILE: TEST_ENV_FILE, PGRAG_LOG_LEVEL: "silent", ...overrides });
}

/** An app on the test topology, stopped after the file; everything it started must stop with it. */
export async function startTestApp(
  overrides: Record<string, string> = {},
  options: { listen?: boolean } = {},
): Promise<App> {
  const config = testConfig({ PGRAG_PORT: "0", ...overrides });
  const app = createApp(config, {
    logger: createLogger({ logLevel: (process.env.PGRAG_TEST_LOG_LEVEL as Config["logLevel"]) ?? "silent" }),
  });
  afterAll(() => app.stop());
  await app.start({ listen: options.listen ?? false });
  return app;
}
