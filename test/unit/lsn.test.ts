import { describe, expect, it } from "vitest";
import { formatLsn, parseLsn } from "../../src/db/lsn.ts";

describe("LSN tokens", () => {
  it("round-trip and order like PostgreSQL's pg_lsn", () => {
    const a = parseLsn("0/16B3748");
    const b = parseLsn("1/0");
    expect(a).toBe(0x16b3748n);
    expect(b).toBe(1n << 32n);
    expect((a ?? 0n) < (b ?? 0n)).toBe(true);
    expect(formatLsn(0x1_0000abcdn)).toBe("1/ABCD");
  });

  it("rejects anything else", () => {
    for (const bad of ["", "16B3748", "0/", "g/1", "0/16B3748; DROP TABLE x", "123456789/0"])
      expect(parseLsn(bad)).toBeNull();
  });
});
