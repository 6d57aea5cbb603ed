import { type Expression, type ExpressionBuilder, type SqlBool, sql } from "kysely";
import { z } from "zod";
import type { Database } from "../db/database.ts";

/**
 * Search filters, applied inside every leg. Metadata conditions compare jsonb values (numbers
 * numerically, strings lexically); keys and values are always bound parameters, never SQL text.
 */
const jsonScalar = z.union([z.string().max(1000), z.number(), z.boolean(), z.null()]);
const condition = z.union([
  jsonScalar,
  z
    .object({
      eq: jsonScalar.optional(),
      in: z.array(jsonScalar).min(1).max(1000).optional(),
      gt: z.union([z.number(), z.string().max(1000)]).optional(),
      gte: z.union([z.number(), z.string().max(1000)]).optional(),
      lt: z.union([z.number(), z.string().max(1000)]).optional(),
      lte: z.union([z.number(), z.string().max(1000)]).optional(),
      exists: z.boolean().optional(),
    })
    .strict()
    .refine((o) => Object.keys(o).length > 0, "give at least one of eq, in, gt, gte, lt, lte, exists"),
]);

export const searchFilterSchema = z
  .object({
    document_ids: z.array(z.string().min(1).max(512)).min(1).max(10_000).optional(),
    metadata: z.record(z.string().min(1).max(200), condition).optional(),
  })
  .strict();

export type SearchFilter = z.infer<typeof searchFilterSchema>;

type ChunkScope = ExpressionBuilder<Database & { c: Database["chunks"] }, "c">;

const RANGE_OPERATORS = { gt: ">", gte: ">=", lt: "<", lte: "<=" } as const;

/** The conditions on chunks `c` (tenant, collections, filters) that both legs share. */
export function chunkConditions(
  eb: ChunkScope,
  scope: {
    tenantId: string;
    collectionIds: readonly string[];
    documentIds?: readonly string[] | null;
  },
  filter: SearchFilter | undefined,
): Expression<SqlBool> {
  const conditions: Expression<SqlBool>[] = [
    eb("c.tenant_id", "=", scope.tenantId),
    eb("c.collection_id", "=", sql<string>`any(${[...scope.collectionIds]}::uuid[])`),
  ];
  if (scope.documentIds) conditions.push(eb("c.document_id", "=", sql<string>`any(${[...scope.documentIds]}::uuid[])`));
  for (const [key, raw] of Object.entries(filter?.metadata ?? {})) {
    const cond = raw !== null && typeof raw === "object" ? raw : { eq: raw };
    const value = sql`c.metadata -> ${key}::text`;
    if ("eq" in cond && cond.eq !== undefined) {
      // Containment uses the GIN (jsonb_path_ops) index on metadata.
      conditions.push(sql<SqlBool>`c.metadata @> jsonb_build_object(${key}::text, ${JSON.stringify(cond.eq)}::jsonb)`);
    }
    if (cond.in) conditions.push(sql<SqlBool>`${value} = any(${cond.in.map((v) => JSON.stringify(v))}::jsonb[])`);
    for (const op of Object.keys(RANGE_OPERATORS) as (keyof typeof RANGE_OPERATORS)[]) {
      const bound = cond[op];
      if (bound === undefined) continue;
      // Compare like with like: a number bound only matches number values, a string bound strings.
      const type = typeof bound === "number" ? "number" : "string";
      conditions.push(
        sql<SqlBool>`(jsonb_typeof(${value}) = ${type} AND ${value} ${sql.raw(RANGE_OPERATORS[op])} ${JSON.stringify(bound)}::jsonb)`,
      );
    }
    if (cond.exists !== undefined) {
      conditions.push(
        cond.exists ? sql<SqlBool>`c.metadata ? ${key}::text` : sql<SqlBool>`NOT (c.metadata ? ${key}::text)`,
      );
    }
  }
  return eb.and(conditions);
}
