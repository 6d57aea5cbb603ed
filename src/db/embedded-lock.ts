import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { AppError } from "../errors.ts";

/**
 * One process owns an embedded data folder at a time: two PGlite instances on one folder corrupt
 * it, and a second one's socket would send writes to a database the first never sees. The owner
 * writes its pid into the lock file; a later process refuses while that
 * process lives, and takes over the lock (and the socket) of one that died without removing them.
 */
export function lockEmbeddedFolder(lockPath: string): () => void {
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lockPath, "wx", 0o600);
      writeSync(fd, JSON.stringify({ pid: process.pid, started: new Date().toISOString() }));
      closeSync(fd);
      return () => {
        if (ownerOf(lockPath)?.pid === process.pid) rmSync(lockPath, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw error;
      const owner = ownerOf(lockPath);
      // An empty or half-written lock is another process between creating and filling it.
      if (!owner && ageMs(lockPath) < FRESH_LOCK_MS) {
        throw new AppError("conflict", "another pgrag process is starting on this embedded database; try again");
      }
      if (owner && alive(owner.pid)) {
        throw new AppError(
          "conflict",
          `the embedded database is in use by pgrag process ${owner.pid} (started ${owner.started}): ` +
            `use that server's API (its URL and key were printed at its start), or stop it (kill ${owner.pid}) and run this again`,
        );
      }
      // Its owner is gone (killed, or the machine restarted): the lock is stale.
      rmSync(lockPath, { force: true });
    }
  }
}

/** How long a lock file may stay unreadable before it counts as left behind. */
const FRESH_LOCK_MS = 10_000;

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function ownerOf(lockPath: string): { pid: number; started: string } | null {
  try {
    const parsed = JSON.parse(readFileSync(lockPath, "utf8")) as { pid?: unknown; started?: unknown };
    return typeof parsed.pid === "number" ? { pid: parsed.pid, started: String(parsed.started ?? "?") } : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, as another user's process.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
