import type { Kysely } from "kysely";
import type { Database } from "../../db/database.ts";
import { formatToken, type ConsistencyToken } from "../../db/consistency-token.ts";
import type { Router } from "../../db/router.ts";
import { AppError, InvalidRequestError, NotFoundError } from "../../errors.ts";
import type { Principal } from "../../tenancy/principal.ts";
import type { Quotas } from "../../tenancy/quotas.ts";
import { requireCollection } from "../../collections/collections.repository.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import { sendImportJob } from "./run-import.job.ts";
import {
  appendImportLines,
  discardStaged,
  findImport,
  type ImportLine,
  importFailures,
  type ImportSummary,
  insertImport,
  type LineFailure,
  listImports,
  runningImportOf,
  setImportStatus,
} from "./imports.repository.ts";

/** Lines written per transaction while an upload streams in. */
const LINES_PER_WRITE = 500;
/** …or fewer, once their content reaches this many characters. */
const CHARACTERS_PER_WRITE = 8 * 1024 * 1024;
/** Per-line failures shown with an import. */
const FAILURES_SHOWN = 100;

export interface ImportDetails extends ImportSummary {
  readonly collection: string;
  readonly failures: readonly LineFailure[];
}

/** Bulk imports: the upload (streamed into the database as it arrives) and reading their progress. */
export class ImportService {
  readonly #router: Router;
  readonly #queue: JobQueue;
  readonly #quotas: Quotas;

  constructor(router: Router, queue: JobQueue, quotas: Quotas) {
    this.#router = router;
    this.#queue = queue;
    this.#quotas = quotas;
  }

  /**
   * Stores the uploaded lines as they arrive, then queues the import. Whatever goes wrong on the way
   * (a bad line, the client going away) fails the import with the reason and leaves the collection
   * as it was; the error is thrown on for the response.
   */
  async upload(principal: Principal, collectionName: string, lines: AsyncIterable<ImportLine>) {
    const { tenantId } = principal;
    const { value: importId } = await this.#write(principal, async (tx) => {
      const collection = await requireCollection(tx, tenantId, collectionName);
      await this.#quotas.reserve(tx, tenantId, "running_imports");
      const created = await insertImport(tx, { tenantId, collectionId: collection.id });
      if (created) return created;
      const running = await runningImportOf(tx, collection.id);
      throw new AppError(
        "conflict",
        `an import into collection "${collectionName}" is still running (${running}); wait for it to finish`,
      );
    });
    try {
      let batch: ImportLine[] = [];
      let characters = 0;
      const flush = async () => {
        const lines = batch;
        batch = [];
        characters = 0;
        const { value: repeats } = await this.#write(principal, async (tx) => {
          const found = await appendImportLines(tx, { importId, tenantId }, lines);
          await this.#quotas.refuseIfOverStorage(tx, tenantId);
          return found;
        });
        const [first] = repeats;
        if (first) {
          throw new InvalidRequestError(
            `line ${first.line}: external_id "${first.externalId}" repeats line ${first.earlier}; each document may appear once per import`,
          );
        }
      };
      for await (const line of lines) {
        batch.push(line);
        characters += line.content.length;
        if (batch.length >= LINES_PER_WRITE || characters >= CHARACTERS_PER_WRITE) await flush();
      }
      if (batch.length > 0) await flush();
      return await this.#write(principal, async (tx) => {
        await setImportStatus(tx, importId, "queued");
        await sendImportJob(this.#queue, tx, { importId, tenantId });
        const queued = await findImport(tx, importId);
        if (!queued) throw new Error(`import ${importId} vanished while it was being queued`);
        return { ...queued, collection: collectionName, failures: [] } satisfies ImportDetails;
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      await this.#write(principal, async (tx) => {
        await discardStaged(tx, importId);
        await setImportStatus(tx, importId, "failed", { error: `upload refused: ${reason}` });
      });
      throw error;
    }
  }

  /**
   * An import with its progress. A completed import's token is the commit that published it, recorded
   * just after that commit; read in between, the position the serving node had reached stands in for
   * it (that node saw the import completed, so it is at or past the commit).
   */
  async getImport(principal: Principal, collectionName: string, importId: string, token: ConsistencyToken | null) {
    const result = await this.#router.read({ token, tenantId: principal.tenantId, observe: true }, async (db) => {
      const collection = await requireCollection(db, principal.tenantId, collectionName);
      const found = await findImport(db, importId);
      if (!found || found.collectionId !== collection.id) return undefined;
      const failures = await importFailures(db, importId, FAILURES_SHOWN);
      return { ...found, collection: collectionName, failures } satisfies ImportDetails;
    });
    const found = result.value;
    if (!found) throw new NotFoundError(`no import "${importId}" in collection "${collectionName}"`);
    const visibleToken =
      found.visibleToken ??
      (found.status === "completed" && result.observed !== undefined ? formatToken(result.observed) : null);
    return { ...result, value: { ...found, visibleToken } };
  }

  listImports(principal: Principal, collectionName: string, limit: number, token: ConsistencyToken | null) {
    return this.#router.read({ token, tenantId: principal.tenantId }, async (db) => {
      const collection = await requireCollection(db, principal.tenantId, collectionName);
      return listImports(db, collection.id, limit);
    });
  }

  #write<T>(principal: Principal, work: (tx: Kysely<Database>) => Promise<T>) {
    return this.#router.write({ tenantId: principal.tenantId }, work);
  }
}
