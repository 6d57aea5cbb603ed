import { type Kysely, type RawBuilder, sql } from "kysely";
import type { Config } from "../config.ts";
import type { Database, TenantQuotaTable } from "../db/database.ts";
import type { Router } from "../db/router.ts";
import { AppError } from "../errors.ts";
import type { Principal } from "./principal.ts";

/** What a tenant may hold at once; each is a PGRAG_QUOTA_* default and a column of tenant_quotas. */
export type QuotaLimits = Config["quotas"];
export type QuotaName = keyof QuotaLimits & Exclude<keyof TenantQuotaTable, "tenant_id">;

export interface QuotaUsage {
  readonly used: number;
  readonly limit: number;
}

/** How each quota is counted, under row-level security (so, for the transaction's tenant), and its setting. */
const QUOTAS: Record<
  QuotaName,
  { readonly setting: string; readonly what: string; readonly used: RawBuilder<number> }
> = {
  collections: {
    setting: "PGRAG_QUOTA_COLLECTIONS",
    what: "collections",
    used: sql`(SELECT count(*)::int FROM collections)`,
  },
  running_imports: {
    setting: "PGRAG_QUOTA_RUNNING_IMPORTS",
    what: "imports not finished",
    used: sql`(SELECT count(*)::int FROM imports WHERE status NOT IN ('completed', 'failed'))`,
  },
  files: {
    setting: "PGRAG_QUOTA_FILES",
    what: "uploaded files",
    used: sql`(SELECT count(*)::int FROM batch_files WHERE kind = 'upload')`,
  },
  running_batches: {
    setting: "PGRAG_QUOTA_RUNNING_BATCHES",
    what: "batches not finished",
    used: sql`(SELECT count(*)::int FROM batches WHERE status IN ('in_progress', 'finalizing', 'cancelling'))`,
  },
  // Documents' text and files' originals, import uploads waiting to be published and batch files
  // (migrations 19, 21, 22); checked
  // after a write (refuseIfOverStorage), not reserved before it.
  stored_bytes: {
    setting: "PGRAG_QUOTA_STORED_BYTES",
    what: "bytes stored",
    used: sql`(SELECT coalesce((SELECT bytes FROM tenant_storage), 0))`,
  },
};

/** Every quota, in the order they are reported. */
export const QUOTA_NAMES = Object.keys(QUOTAS) as QuotaName[];

/**
 * Per-tenant quotas: the configured defaults, or a tenant's own from tenant_quotas. A write that
 * adds to a quota calls `reserve` in its transaction: the tenant's writes of that kind take turns
 * (a transaction-scoped advisory lock, safe under transaction pooling), so two at once cannot both
 * take the last unit.
 */
export class Quotas {
  readonly #router: Router;
  readonly #defaults: QuotaLimits;

  constructor(router: Router, defaults: QuotaLimits) {
    this.#router = router;
    this.#defaults = defaults;
  }

  /** Refuses (429, naming the quota) when the tenant's transaction `tx` may not add one more of `name`. */
  async reserve(tx: Kysely<Database>, tenantId: string, name: Exclude<QuotaName, "stored_bytes">): Promise<void> {
    await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`pgrag.quota.${name}:${tenantId}`}, 0))`.execute(tx);
    const { used, limit } = (await this.#usage(tx, tenantId, [name]))[name];
    if (used >= limit) {
      const quota = QUOTAS[name];
      throw new AppError(
        "quota_exceeded",
        `the tenant has ${used} ${quota.what}, its quota "${name}" (${limit}; default ${quota.setting}): finish or delete some, or ask an operator for a larger quota`,
      );
    }
  }

  /**
   * Refuses (naming the quota) a write that brought the tenant past its `stored_bytes` quota, after
   * the write, in its transaction (which the refusal rolls back). Exact without a lock of its own: the
   * triggers that count bytes lock the tenant's row to the commit, so writers of one tenant add up
   * one after the other and each sees the others' committed bytes.
   */
  async refuseIfOverStorage(tx: Kysely<Database>, tenantId: string): Promise<void> {
    const { used, limit } = (await this.#usage(tx, tenantId, ["stored_bytes"])).stored_bytes;
    if (used > limit) {
      throw new AppError(
        "payload_too_large",
        `this would bring the tenant to ${used} bytes stored, past its quota "stored_bytes" (${limit}; default PGRAG_QUOTA_STORED_BYTES): delete documents or files, or ask an operator for a larger quota`,
      );
    }
  }

  /** Every quota of the principal's tenant with what it uses now (read on the primary: exact). */
  async usage(principal: Principal): Promise<Record<QuotaName, QuotaUsage>> {
    const { value } = await this.#router.read({ primary: true, tenantId: principal.tenantId }, (db) =>
      this.#usage(db, principal.tenantId, QUOTA_NAMES),
    );
    return value;
  }

  async #usage<N extends QuotaName>(db: Kysely<Database>, tenantId: string, names: readonly N[]) {
    const own = await tenantQuotas(db, tenantId);
    const { rows } = await sql<Record<N, number>>`
      SELECT ${sql.join(names.map((name) => sql`${QUOTAS[name].used} AS ${sql.ref(name)}`))}
    `.execute(db);
    const used = rows[0];
    // Bytes are bigints, which arrive as strings.
    return Object.fromEntries(
      names.map((name) => [name, { used: Number(used?.[name] ?? 0), limit: own[name] ?? this.#defaults[name] }]),
    ) as Record<N, QuotaUsage>;
  }
}

/** The quotas a tenant has of its own (null: the default), as an operator sees them. */
export async function tenantQuotas(db: Kysely<Database>, tenantId: string): Promise<Record<QuotaName, number | null>> {
  const own = await db.selectFrom("tenant_quotas").selectAll().where("tenant_id", "=", tenantId).executeTakeFirst();
  return Object.fromEntries(
    QUOTA_NAMES.map((name) => [name, own?.[name] === null || own?.[name] === undefined ? null : Number(own[name])]),
  ) as Record<QuotaName, number | null>;
}

/** Sets some of a tenant's own quotas (null: back to the default), keeping the others. */
export async function setTenantQuotas(
  db: Kysely<Database>,
  tenantId: string,
  quotas: Partial<Record<QuotaName, number | null>>,
): Promise<void> {
  await db
    .insertInto("tenant_quotas")
    .values({ tenant_id: tenantId, ...quotas })
    .onConflict((oc) => oc.column("tenant_id").doUpdateSet(quotas))
    .execute();
}
