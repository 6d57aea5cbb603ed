import { describe, expect, it } from "vitest";
import { type MemberSample, readsOnOldTimelines } from "../../harness/failover-load.ts";

const sample = (
  at: number,
  member: string,
  primary: boolean,
  timeline: number | null,
  lsn: bigint,
  ended?: [number, bigint],
) => ({ at, member, primary, timeline, lsn, switchPoints: new Map(ended ? [ended] : []) }) satisfies MemberSample;

describe("bench:failover's count of reads on an old timeline", () => {
  // pg1 was the primary on timeline 1; pg2 took over at 0/1000 (timeline 2); pg3 is a replica.
  const samples = [
    sample(0, "pg1", true, 1, 900n),
    sample(0, "pg3", false, 1, 900n),
    sample(10, "pg2", true, 2, 1100n, [1, 1000n]),
    sample(10, "pg3", false, 1, 950n),
    sample(20, "pg1", false, 1, 1050n), // the old primary, past the switch point: diverged
    sample(30, "pg3", false, 2, 1100n),
  ];

  it("counts a read of a node past its old timeline's switch point, not one of shared history", () => {
    expect(readsOnOldTimelines([{ at: 5, node: "pg3" }], samples)).toBe(0); // before the switch
    expect(readsOnOldTimelines([{ at: 15, node: "pg3" }], samples)).toBe(0); // timeline 1, before 0/1000
    expect(readsOnOldTimelines([{ at: 25, node: "pg1" }], samples)).toBe(1); // timeline 1, past 0/1000
    expect(readsOnOldTimelines([{ at: 35, node: "pg3" }], samples)).toBe(0); // on timeline 2
  });

  it("counts a read of a node still acting as the old primary after a newer one appeared", () => {
    const stale = [sample(0, "pg1", true, 1, 900n), sample(10, "pg2", true, 2, 1000n, [1, 950n])];
    expect(readsOnOldTimelines([{ at: 12, node: "pg1" }], stale)).toBe(1);
  });

  it("judges a replica that lost its WAL receiver by the timeline it last streamed", () => {
    // pg2 (timeline 2) crashes; pg1 and pg3 lose their receivers at 0/2000, all of it timeline 2's;
    // pg1 is promoted (timeline 3, from 0/2000); pg3 follows it later.
    const crash = [
      sample(0, "pg2", true, 2, 2000n, [1, 1000n]),
      sample(0, "pg3", false, 2, 2000n),
      sample(10, "pg3", false, null, 2000n),
      sample(20, "pg1", true, 3, 2100n, [2, 2000n]),
      sample(25, "pg3", false, null, 2000n),
      sample(30, "pg3", false, 3, 2100n),
    ];
    expect(readsOnOldTimelines([{ at: 12, node: "pg3" }], crash)).toBe(0); // timeline 2, as the primary
    expect(readsOnOldTimelines([{ at: 27, node: "pg3" }], crash)).toBe(0); // timeline 2, at the switch point
    // Never seen streaming: not judged, whatever its position.
    expect(readsOnOldTimelines([{ at: 27, node: "pg4" }], [...crash, sample(26, "pg4", false, null, 9999n)])).toBe(0);
  });

  it("counts a replica that lost its receiver past its timeline's switch point", () => {
    const diverged = [
      sample(0, "pg1", true, 1, 1000n),
      sample(0, "pg3", false, 1, 1050n), // received WAL the synchronous standby had not
      sample(10, "pg3", false, null, 1050n),
      sample(10, "pg2", true, 2, 1100n, [1, 1000n]),
    ];
    expect(readsOnOldTimelines([{ at: 12, node: "pg3" }], diverged)).toBe(1);
  });
});
