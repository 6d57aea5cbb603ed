import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite-pgvector";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { lockEmbeddedFolder } from "./embedded-lock.ts";

export interface EmbeddedDatabase {
  stop(): Promise<void>;
}

/**
 * PGlite (PostgreSQL in WASM) with pgvector, its data in a local folder, served over the PostgreSQL
 * protocol on a local port, so the same pg / Kysely / node-pg-migrate code runs against it. For trying
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
    const db = await PGlite.create({ dataDir: options.dataDir, extensions: { vector } });
    // A few connections may be open (the app's pool, migrations, admin); statements are queued one at a time.
    const server = new PGLiteSocketServer({ db, path: socket, maxConnections: 8 });
    await server.start();
    return {
      async stop() {
        await server.stop();
        await db.close();
        unlock();
      },
    };
  } catch (error) {
    unlock();
    throw error;
  }
}
