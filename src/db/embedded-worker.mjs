// The embedded database's thread: PGlite runs SQL on the thread that owns it, so on the API's thread
// one large write would hold every request until it ends. Plain JavaScript: it needs no TypeScript.
import { parentPort, workerData } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite-pgvector";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const { dataDir, socketPath, maxConnections } = workerData;
const db = await PGlite.create({ dataDir, extensions: { vector } });
const server = new PGLiteSocketServer({ db, path: socketPath, maxConnections });
await server.start();
parentPort.once("message", async () => {
  await server.stop();
  await db.close();
  parentPort.close();
});
parentPort.postMessage("ready");
