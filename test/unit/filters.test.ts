import { describe, expect, it } from "vitest";
import { offlineKysely } from "../../harness/offline-kysely.ts";
import { chunkConditions, type SearchFilter, searchFilterSchema } from "../../src/retrieval/filters.ts";

// Compiled for PostgreSQL without a connection: the SQL a filter becomes, checked as text.
const db = offlineKysely();
const scope = { tenantId: "t", collectionIds: ["c1", "c2"] };
const compile = (filter?: SearchFilter, documentIds?: string[]) =>
  db
    .selectFrom("chunks as c")
    .select("c.id")
    .where((eb) => chunkConditions(eb, { ...scope, documentIds: documentIds ?? null }, filter))
    .compile();

describe("chunkConditions", () => {
  it("always scopes to the tenant and the collections, as parameters", () => {
    const query = compile();
    expect(query.sql).toBe(
      'select "c"."id" from "chunks" as "c" where ("c"."tenant_id" = $1 and "c"."collection_id" = any($2::uuid[]))',
    );
    expect(query.parameters).toEqual(["t", ["c1", "c2"]]);
  });

  it("turns equality into containment (the GIN index) and ranges into typed comparisons; values are never SQL text", () => {
    const query = compile(
      { metadata: { lang: "en", year: { gte: 2020, lt: 2024 }, tags: { in: ["a", "b"] }, draft: { exists: false } } },
      ["d1"],
    );
    expect(query.sql).toBe(
      'select "c"."id" from "chunks" as "c" where ("c"."tenant_id" = $1 and "c"."collection_id" = any($2::uuid[])' +
        ' and "c"."document_id" = any($3::uuid[]) and c.metadata @> jsonb_build_object($4::text, $5::jsonb)' +
        " and (jsonb_typeof(c.metadata -> $6::text) = $7 AND c.metadata -> $8::text >= $9::jsonb)" +
        " and (jsonb_typeof(c.metadata -> $10::text) = $11 AND c.metadata -> $12::text < $13::jsonb)" +
        " and c.metadata -> $14::text = any($15::jsonb[]) and NOT (c.metadata ? $16::text))",
    );
    expect(query.parameters).toEqual([
      "t",
      ["c1", "c2"],
      ["d1"],
      "lang",
      '"en"',
      "year",
      "number",
      "year",
      "2020",
      "year",
      "number",
      "year",
      "2024",
      "tags",
      ['"a"', '"b"'],
      "draft",
    ]);
    expect(query.sql).not.toMatch(/2020|"en"|draft/);
  });
});

describe("the filter schema", () => {
  it("refuses an empty condition and unknown fields, naming them", () => {
    expect(searchFilterSchema.safeParse({ metadata: { year: {} } }).error?.issues[0]?.message).toMatch(
      /give at least one of eq, in/,
    );
    expect(searchFilterSchema.safeParse({ metadata: { year: { between: [1, 2] } } }).success).toBe(false);
    expect(searchFilterSchema.safeParse({ collection: "x" }).success).toBe(false);
    expect(searchFilterSchema.safeParse({ document_ids: ["a"], metadata: { k: 1 } }).success).toBe(true);
  });
});
