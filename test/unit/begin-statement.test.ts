import { describe, expect, it } from "vitest";
import { beginStatement } from "../../src/db/router.ts";

describe("the statement that opens a routed transaction", () => {
  it("is a plain BEGIN without settings, and sends settings with it as transaction-local set_config calls", () => {
    expect(beginStatement({})).toBe("BEGIN");
    expect(beginStatement({ "pgrag.tenant_id": "7d0f6a52-64a4-4c59-9a43-3f0a9a1c2b11", "hnsw.ef_search": "100" })).toBe(
      "BEGIN; SELECT set_config('pgrag.tenant_id', '7d0f6a52-64a4-4c59-9a43-3f0a9a1c2b11', true), set_config('hnsw.ef_search', '100', true)",
    );
  });

  it("opens REPEATABLE READ for a transaction that needs one snapshot", () => {
    expect(beginStatement({}, true)).toBe("BEGIN ISOLATION LEVEL REPEATABLE READ");
    expect(beginStatement({ "pgrag.tenant_id": "t" }, true)).toBe(
      "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT set_config('pgrag.tenant_id', 't', true)",
    );
  });
});
