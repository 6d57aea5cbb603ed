import { createApp } from "../app.ts";
import { loadConfig } from "../config.ts";
import { untilSignal } from "./signals.ts";

/** `pgrag serve` (listen: true) and `pgrag worker` (ingestion workers only). */
export async function serve(listen: boolean): Promise<void> {
  const app = createApp(loadConfig());
  try {
    await app.start({ listen });
  } catch (error) {
    await app.stop();
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
      // A person's mistake, not a crash: one line saying what to do, no stack.
      const { host, port } = app.config.http;
      process.stderr.write(
        `pgrag: ${host}:${port} is in use (another pgrag, or another server); stop it, or choose another port with PGRAG_PORT\n`,
      );
    } else {
      app.logger.fatal({ err: error }, `start-up failed: ${(error as Error).message}`);
    }
    process.exitCode = 1;
    return;
  }
  const key = app.devApiKey();
  if (listen && key) {
    process.stdout.write(
      `\npgrag is running on an embedded PostgreSQL.\n  console:   http://${app.config.http.host}:${app.port()}/\n  API key:   ${key}\n\n`,
    );
  }
  // Past graceful shutdown's own deadline, a few seconds for the pools and the log to close.
  await untilSignal(app.logger, app.config.shutdownTimeoutMs + 5_000);
  await app.stop();
}
