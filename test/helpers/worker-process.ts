import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { TEST_ENV_FILE } from "./cluster.ts";

const CLI = fileURLToPath(new URL("../../bin/pgrag.js", import.meta.url));

/** A `pgrag worker` process on the test topology with these settings, for tests that kill one mid-work. */
export function spawnWorker(settings: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [CLI, "worker"], {
    env: { ...process.env, PGRAG_ENV_FILE: TEST_ENV_FILE, PGRAG_LOG_LEVEL: "error", ...settings },
    stdio: "ignore",
  });
}

/** SIGKILL: no graceful shutdown, its jobs and leases left as they were; resolves once it is gone. */
export async function killWorker(worker: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => worker.once("exit", resolve));
  worker.kill("SIGKILL");
  await exited;
}
