import { AsyncLocalStorage } from "node:async_hooks";
import { type Kysely, sql } from "kysely";
import { AppError } from "../errors.ts";
import type { Database } from "./database.ts";

/**
 * Idempotency keys at the router (migration 29). The HTTP layer opens a claim for a request carrying
 * `Idempotency-Key`; the request's first write claims the key in its own transaction, so the claim
 * commits exactly when the write does. A retry of the same request then finds the key taken and is
 * answered with the first answer instead of writing again.
 */
export interface IdempotencyClaim {
  readonly key: string;
  /** What the request was: a key reused for a different request is refused. */
  readonly fingerprint: string;
  /** The tenant whose committed write claimed the key; null until one has. */
  claimedBy: string | null;
}

export interface StoredAnswer {
  readonly status: number | null;
  readonly body: unknown;
  readonly token: string | null;
}

/**
 * The key was claimed by an earlier request whose write committed: its answer, not a second write.
 * A conflict wherever it is counted (usage events): the request did no work of its own.
 */
export class IdempotentReplay extends AppError {
  override readonly name = "IdempotentReplay";
  constructor(
    readonly key: string,
    readonly answer: StoredAnswer,
    /** False when the earlier request was a different one (method, path, key or body). */
    readonly sameRequest: boolean,
  ) {
    super("conflict", `the request with Idempotency-Key "${key}" was already applied`);
  }
}

/** How long a key is remembered; expired keys are deleted as the tenant claims new ones. */
const KEPT = "1 day";
const EXPIRED_DELETED_PER_CLAIM = 100;

const requests = new AsyncLocalStorage<IdempotencyClaim>();

export function withIdempotencyKey<T>(claim: IdempotencyClaim, run: () => Promise<T>): Promise<T> {
  return requests.run(claim, run);
}

/** The open claim of the request this code runs for, if it carries a key no write has claimed yet. */
export function unclaimedKey(): IdempotencyClaim | undefined {
  const claim = requests.getStore();
  return claim?.claimedBy === null ? claim : undefined;
}

/**
 * Claims the key in the write's transaction. A concurrent request with the same key waits here on
 * the key's row until the first commits (then this one replays it) or rolls back (then this one writes).
 */
export async function claimKey(tx: Kysely<Database>, tenantId: string, claim: IdempotencyClaim): Promise<void> {
  await sql`
    DELETE FROM idempotent_requests
    WHERE (tenant_id, key) IN (SELECT tenant_id, key FROM idempotent_requests
                               WHERE tenant_id = ${tenantId}::uuid AND created_at < now() - ${KEPT}::interval
                               LIMIT ${EXPIRED_DELETED_PER_CLAIM})
  `.execute(tx);
  const { rows } = await sql`
    INSERT INTO idempotent_requests (tenant_id, key, fingerprint)
    VALUES (${tenantId}::uuid, ${claim.key}, ${claim.fingerprint})
    ON CONFLICT (tenant_id, key) DO NOTHING
    RETURNING 1 AS claimed
  `.execute(tx);
  if (rows.length > 0) return;
  const earlier = await tx
    .selectFrom("idempotent_requests")
    .select(["fingerprint", "response_status", "response_body", "response_token"])
    .where("tenant_id", "=", tenantId)
    .where("key", "=", claim.key)
    .executeTakeFirstOrThrow();
  throw new IdempotentReplay(
    claim.key,
    { status: earlier.response_status, body: earlier.response_body, token: earlier.response_token },
    earlier.fingerprint === claim.fingerprint,
  );
}

/** The answer the claiming request gave, for its retries. */
export async function recordAnswer(
  tx: Kysely<Database>,
  tenantId: string,
  key: string,
  answer: StoredAnswer,
): Promise<void> {
  await tx
    .updateTable("idempotent_requests")
    .set({
      response_status: answer.status,
      response_body: answer.body === null ? null : JSON.stringify(answer.body),
      response_token: answer.token,
    })
    .where("tenant_id", "=", tenantId)
    .where("key", "=", key)
    .execute();
}

/** Frees a key whose request failed after its first write, so that a retry runs it again. */
export async function releaseKey(tx: Kysely<Database>, tenantId: string, key: string): Promise<void> {
  await tx.deleteFrom("idempotent_requests").where("tenant_id", "=", tenantId).where("key", "=", key).execute();
}
