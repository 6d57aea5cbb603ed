import { describe, expect, it } from "vitest";
import {
  formatToken,
  isPrimaryOnly,
  laterToken,
  PRIMARY_ONLY_TOKEN,
  parseToken,
} from "../../src/db/consistency-token.ts";
import { positionToReach } from "../../src/db/routing-policy.ts";

const at = (timeline: number | null, lsn: bigint) => ({ timeline, lsn });

describe("consistency tokens", () => {
  it("carry the timeline and round-trip; bare positions from before still parse, timeline unknown", () => {
    expect(parseToken("2:0/16B3748")).toEqual(at(2, 0x16b3748n));
    expect(formatToken(at(2, 0x16b3748n))).toBe("2:0/16B3748");
    expect(parseToken("0/16B3748")).toEqual(at(null, 0x16b3748n));
    expect(formatToken(at(null, 0x1_0000abcdn))).toBe("1/ABCD");
    expect(parseToken(formatToken(at(4294967295, 7n)))).toEqual(at(4294967295, 7n));
  });

  it("reject anything else", () => {
    for (const bad of ["", "2:", ":0/1", "0:0/1", "-1:0/1", "x:0/1", "2:0/", "4294967296:0/1", "2:0/1; DROP TABLE x"])
      expect(parseToken(bad)).toBeNull();
  });

  it("a client's token is never the primary-only token, even with the same text", () => {
    const echoed = parseToken(formatToken(PRIMARY_ONLY_TOKEN));
    expect(echoed).toEqual(PRIMARY_ONLY_TOKEN);
    expect(isPrimaryOnly(echoed ?? PRIMARY_ONLY_TOKEN)).toBe(false);
    expect(isPrimaryOnly(PRIMARY_ONLY_TOKEN)).toBe(true);
  });

  it("the later of two is on the newer timeline, whatever the positions; else the further position", () => {
    expect(laterToken(at(1, 900n), at(2, 100n))).toEqual(at(2, 100n));
    expect(laterToken(at(3, 100n), at(2, 900n))).toEqual(at(3, 100n));
    expect(laterToken(at(2, 100n), at(2, 900n))).toEqual(at(2, 900n));
    expect(laterToken(at(null, 500n), at(2, 400n))).toEqual(at(null, 500n));
  });
});

describe("a token judged against the primary's timeline", () => {
  const primary = { timeline: 2, lsn: 5_000n };

  it("on the primary's timeline (or unknown on either side): its own position", () => {
    expect(positionToReach(at(2, 4_000n), primary)).toBe(4_000n);
    expect(positionToReach(at(null, 9_000n), primary)).toBe(9_000n);
    expect(positionToReach(at(1, 9_000n), { timeline: null, lsn: 5_000n })).toBe(9_000n);
  });

  it("from an older timeline, before the switch: the same position (the new history shares it)", () => {
    expect(positionToReach(at(1, 3_000n), primary)).toBe(3_000n);
  });

  it("from an older timeline, past anything the new primary has: bounded by the new primary's position", () => {
    // Written after the switch point on the old primary, never confirmed by the standby that took
    // over: waiting for it would wait forever, and everything that survived is at or before 5000.
    expect(positionToReach(at(1, 8_000n), primary)).toBe(5_000n);
  });

  it("the primary-only token is never bounded", () => {
    expect(positionToReach(PRIMARY_ONLY_TOKEN, primary)).toBe(PRIMARY_ONLY_TOKEN.lsn);
  });
});
