import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { lockEmbeddedFolder } from "./embedded-lock.ts";

export interface EmbeddedDatabase {
  stop(): Promise<void>;
}

/**
 * PGlite (PostgreSQL in WASM) with pgvector, its data in a local folder, served over the PostgreSQL
 * protocol from a thread of its own (embedded-worker.mjs), so the same pg / Kysely / node-pg-migrate
 * code runs against it and its SQL never holds the API's event loop. For trying
 * and developing only: one session, no replicas, and its single user is a superuser, which row-level
 * security does not bind (the application's own tenant filters still apply).
 */
export async function startEmbeddedDatabase(options: {
  dataDir: string;
  port: number;
  socketDir: string;
}): Promise<EmbeddedDatabase> {
  mkdirSync(options.dataDir, { recursive: true });
  // PGlite checks no password and its one user is a superuser: a TCP port would let any local user
  // in. A Unix socket in a directory only this OS user may enter is the authentication.
  mkdirSync(options.socketDir, { recursive: true, mode: 0o700 });
  chmodSync(options.socketDir, 0o700);
  const unlock = lockEmbeddedFolder(join(options.socketDir, "owner.lock"));
  try {
    const socket = join(options.socketDir, `.s.PGSQL.${options.port}`);
    // Ours now: a socket here was left behind by an owner that died.
    rmSync(socket, { force: true });
    const worker = new Worker(new URL("./embedded-worker.mjs", import.meta.url), {
      // A few connections may be open (the app's pool, migrations, admin); statements are queued one at a time.
      workerData: { dataDir: options.dataDir, socketPath: socket, maxConnections: 8 },
    });
    // Known from the start, so that a stop after the thread ended by itself does not wait for it.
    let running = true;
    const exited = new Promise<void>((resolve) =>
      worker.once("exit", () => {
        running = false;
        resolve();
      }),
    );
    await new Promise<void>((resolve, reject) => {
      worker.once("message", () => resolve());
      worker.once("error", reject);
      void exited.then(() => reject(new Error("the embedded database stopped while starting")));
    });
    return {
      async stop() {
        if (running) worker.postMessage("stop");
        await exited;
        unlock();
      },
    };
  } catch (error) {
    unlock();
    throw error;
  }
}
