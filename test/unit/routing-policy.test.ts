import { describe, expect, it } from "vitest";
import {
  chooseFallback,
  clampToken,
  type NodeView,
  pickLeastBusy,
  readNodeStanding,
  replicasCaughtUp,
  replicasInRotation,
  replicasThatMayCatchUp,
} from "../../src/db/routing-policy.ts";

const node = (name: string, state: NodeView["state"], lsn: bigint | null, outstanding = 0): NodeView => ({
  name,
  state,
  lsn,
  outstanding,
});

/** A random source that returns the given draws in turn. */
const draws = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length] as number;
};

describe("power of two choices", () => {
  it("takes the less busy of the two drawn nodes, and the only one when there is one", () => {
    const nodes = [node("r1", "up", 1n, 5), node("r2", "up", 1n, 1), node("r3", "up", 1n, 0)];
    expect(pickLeastBusy(nodes, draws(0, 0.5))?.name).toBe("r2"); // draws r1 and r2
    expect(pickLeastBusy(nodes, draws(0.99, 0.6))?.name).toBe("r3"); // draws r3 and r2
    expect(pickLeastBusy(nodes, draws(0.5, 0.5))?.name).toBe("r3"); // draws r2 twice: the second becomes the last, r3
    expect(pickLeastBusy([nodes[0] as NodeView])?.name).toBe("r1");
    expect(pickLeastBusy([])).toBeUndefined();
  });

  it("never returns a node outside the candidates, over many draws", () => {
    const nodes = [node("a", "up", 1n, 3), node("b", "up", 1n, 2)];
    for (let i = 0; i < 200; i++) expect(["a", "b"]).toContain(pickLeastBusy(nodes)?.name);
  });
});

describe("candidates", () => {
  const replicas = [
    node("r1", "up", 100n),
    node("r2", "lagging", 50n),
    node("r3", "down", 200n),
    node("r4", "up", null),
  ];

  it("puts only up replicas that have not failed this read in rotation", () => {
    expect(replicasInRotation(replicas, []).map((r) => r.name)).toEqual(["r1", "r4"]);
    expect(replicasInRotation(replicas, ["r1"]).map((r) => r.name)).toEqual(["r4"]);
  });

  it("lets a lagging replica serve a token it has reached, never a down one or one of unknown position", () => {
    expect(replicasCaughtUp(replicas, 50n, []).map((r) => r.name)).toEqual(["r1", "r2"]);
    expect(replicasCaughtUp(replicas, 100n, []).map((r) => r.name)).toEqual(["r1"]);
    expect(replicasCaughtUp(replicas, 150n, [])).toEqual([]);
    expect(replicasCaughtUp(replicas, 50n, ["r1"]).map((r) => r.name)).toEqual(["r2"]);
    expect(replicasThatMayCatchUp(replicas, ["r2"]).map((r) => r.name)).toEqual(["r1", "r4"]);
  });
});

describe("fallback when no replica can take the read", () => {
  const lagging = [node("r1", "lagging", 1n), node("r2", "down", 1n)];

  it("goes to the primary while it is up, with or without a token", () => {
    for (const token of [null, 10n]) {
      expect(chooseFallback({ token, primaryState: "up", readFallbackToPrimary: true, replicas: lagging })).toEqual({
        kind: "primary",
      });
    }
  });

  it("refuses token-less reads when fallback to the primary is off", () => {
    const decision = chooseFallback({
      token: null,
      primaryState: "up",
      readFallbackToPrimary: false,
      replicas: lagging,
    });
    expect(decision).toEqual({ kind: "unavailable", message: "no healthy read replica is available" });
    // A read with a token still needs the primary when no replica has its write.
    expect(
      chooseFallback({ token: 5n, primaryState: "up", readFallbackToPrimary: false, replicas: lagging }).kind,
    ).toBe("primary");
  });

  it("serves a token-less read from a lagging replica when the primary is down, never a down one", () => {
    const decision = chooseFallback({
      token: null,
      primaryState: "down",
      readFallbackToPrimary: true,
      replicas: lagging,
    });
    expect(decision).toMatchObject({ kind: "replica", node: { name: "r1" } });
    const none = chooseFallback({
      token: null,
      primaryState: "down",
      readFallbackToPrimary: true,
      replicas: [lagging[1] as NodeView],
    });
    expect(none).toEqual({ kind: "unavailable", message: "no database node is available for reads" });
  });

  it("never serves a read with a token from a lagging replica when the primary is down", () => {
    const decision = chooseFallback({
      token: 5n,
      primaryState: "down",
      readFallbackToPrimary: true,
      replicas: lagging,
    });
    expect(decision.kind).toBe("unavailable");
    expect(decision).toMatchObject({ message: expect.stringMatching(/caught up with your last write/) });
  });
});

describe("token clamping", () => {
  it("keeps a token at or behind the primary and clamps one ahead of it to the primary's position", () => {
    expect(clampToken(10n, 20n)).toBe(10n);
    expect(clampToken(20n, 20n)).toBe(20n);
    expect(clampToken(0xffffffffffffffffn, 20n)).toBe(20n);
    expect(clampToken(30n, null)).toBe(30n);
  });
});

describe("a read node's standing", () => {
  const seen = (over: Partial<Parameters<typeof readNodeStanding>[0]>) => ({
    inRecovery: true,
    streaming: true,
    timeline: 2,
    lagMs: 0,
    ...over,
  });

  it("a streaming replica on the primary's timeline is up, or lagging past the bound", () => {
    expect(readNodeStanding(seen({}), 2, 1_000)).toEqual({ state: "up", reason: null });
    expect(readNodeStanding(seen({ lagMs: 5_000 }), 2, 1_000).state).toBe("lagging");
    // Timeline unknown (the receiver's is hidden without pg_read_all_stats): trusted while it streams.
    expect(readNodeStanding(seen({ timeline: null }), 2, 1_000).state).toBe("up");
  });

  it("a promoted node is out: it is a primary now", () => {
    expect(readNodeStanding(seen({ inRecovery: false }), 2, 1_000)).toMatchObject({ state: "detached" });
  });

  it("a node on an older timeline is out, streaming or not, until it has rejoined", () => {
    const old = readNodeStanding(seen({ timeline: 1 }), 2, 1_000);
    expect(old.state).toBe("detached");
    expect(old.reason).toMatch(/timeline 1, the primary is on 2/);
    expect(readNodeStanding(seen({ timeline: 1, streaming: false }), 2, 1_000).state).toBe("detached");
    expect(readNodeStanding(seen({ timeline: 2, streaming: false }), 2, 1_000).state).toBe("up");
  });

  it("detached nodes take no reads, with or without a token", () => {
    const nodes = [node("r1", "detached", 10n), node("r2", "up", 5n)];
    expect(replicasInRotation(nodes, []).map((n) => n.name)).toEqual(["r2"]);
    expect(replicasThatMayCatchUp(nodes, []).map((n) => n.name)).toEqual(["r2"]);
    expect(replicasCaughtUp(nodes, 8n, [])).toEqual([]);
  });
});
