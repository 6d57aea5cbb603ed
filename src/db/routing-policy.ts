import { type ConsistencyToken, isPrimaryOnly } from "./consistency-token.ts";
import type { Lsn } from "./lsn.ts";

/**
 * Which node serves a read, as pure functions of what the monitor last saw: the router feeds them
 * views of its nodes and acts on the answer. Kept free of I/O so every branch is unit-tested.
 */
/** How the monitor sees a node (src/db/node-monitor.ts says what each state means). */
export type NodeState = "up" | "lagging" | "detached" | "down";

export interface NodeView {
  readonly name: string;
  readonly state: NodeState;
  /** Replay position of a replica, current WAL position of the primary; null when unknown. */
  readonly lsn: Lsn | null;
  /** Requests this process has in flight on the node. */
  readonly outstanding: number;
}

export type Random = () => number;

/** Power of two choices: of two nodes drawn at random, the one with fewer requests in flight. */
export function pickLeastBusy<T extends NodeView>(nodes: readonly T[], random: Random = Math.random): T | undefined {
  if (nodes.length <= 1) return nodes[0];
  const a = nodes[Math.floor(random() * nodes.length)] as T;
  let b = nodes[Math.floor(random() * (nodes.length - 1))] as T;
  if (b === a) b = nodes[nodes.length - 1] as T;
  return a.outstanding <= b.outstanding ? a : b;
}

/** Replicas a read without a token may use: up (reachable and within the lag bound), not failed already. */
export function replicasInRotation<T extends NodeView>(replicas: readonly T[], exclude: readonly string[]): T[] {
  return replicas.filter((r) => r.state === "up" && !exclude.includes(r.name));
}

/** Replicas that may still reach a token: reachable (lagging ones included), not failed already. */
export function replicasThatMayCatchUp<T extends NodeView>(replicas: readonly T[], exclude: readonly string[]): T[] {
  return replicas.filter((r) => (r.state === "up" || r.state === "lagging") && !exclude.includes(r.name));
}

/** Of those, the ones whose last seen replay position is at or past the token. */
export function replicasCaughtUp<T extends NodeView>(
  replicas: readonly T[],
  token: Lsn,
  exclude: readonly string[],
): T[] {
  return replicasThatMayCatchUp(replicas, exclude).filter((r) => r.lsn !== null && r.lsn >= token);
}

export type FallbackDecision<T extends NodeView> =
  | { readonly kind: "primary" }
  | { readonly kind: "replica"; readonly node: T }
  | { readonly kind: "unavailable"; readonly message: string };

/**
 * Where a read goes when no replica in rotation (or caught up with its token) can take it. Without a
 * token, a lagging replica beats no answer when the primary is down; with one, only the primary will do.
 */
export function chooseFallback<T extends NodeView>(input: {
  readonly token: Lsn | null;
  readonly primaryState: NodeState;
  readonly readFallbackToPrimary: boolean;
  readonly replicas: readonly T[];
  readonly random?: Random;
}): FallbackDecision<T> {
  const { token, primaryState, replicas } = input;
  if (token === null && !input.readFallbackToPrimary) {
    return { kind: "unavailable", message: "no healthy read replica is available" };
  }
  if (primaryState !== "down") return { kind: "primary" };
  if (token === null) {
    const lagging = pickLeastBusy(
      replicas.filter((r) => r.state === "lagging"),
      input.random,
    );
    if (lagging) return { kind: "replica", node: lagging };
    return { kind: "unavailable", message: "no database node is available for reads" };
  }
  return {
    kind: "unavailable",
    message: "no replica has caught up with your last write yet and the primary is unreachable; retry shortly",
  };
}

/**
 * A token can never be ahead of the primary: every real one is a position the primary has passed. A
 * client's token beyond it (forged, or from another deployment) would make every read wait for
 * replicas that can never catch up, so it is clamped to the primary's position — which still covers
 * every write this deployment has committed.
 */
export function clampToken(token: Lsn, primaryPosition: Lsn | null): Lsn {
  return primaryPosition !== null && token > primaryPosition ? primaryPosition : token;
}

/** What a probe of a read node saw. */
export interface ReadNodeObservation {
  readonly inRecovery: boolean;
  /** A WAL receiver is running: the node streams from an upstream. */
  readonly streaming: boolean;
  /** The timeline it replays: the receiver's when streaming (null if hidden), else the last one seen. */
  readonly timeline: number | null;
  readonly lagMs: number;
}

export type ReadNodeStanding = { readonly state: NodeState; readonly reason: string | null };

/**
 * Whether a read node may serve reads. A node that is no longer in recovery is a primary now (a
 * promoted replica): its data may be ahead of the others' or on a history no one else follows. A
 * node on an older timeline than the primary's, or one that has stopped streaming since the primary
 * moved on, may hold WAL past the switch point that the new primary never had: both stay out until
 * they stream the current timeline again (after pg_rewind, for a former primary).
 */
export function readNodeStanding(
  seen: ReadNodeObservation,
  primaryTimeline: number | null,
  maxReplicaLagMs: number,
): ReadNodeStanding {
  if (!seen.inRecovery) return { state: "detached", reason: "not in recovery: it is a primary now" };
  if (seen.timeline !== null && primaryTimeline !== null && seen.timeline < primaryTimeline) {
    const how = seen.streaming ? "streams" : "is not streaming and last replayed";
    return {
      state: "detached",
      reason: `${how} timeline ${seen.timeline}, the primary is on ${primaryTimeline}: out until it has rejoined`,
    };
  }
  return { state: seen.lagMs > maxReplicaLagMs ? "lagging" : "up", reason: null };
}

/**
 * The position a token asks a node to have replayed. A token written on an older timeline than the
 * primary's is judged against the switch point: writes up to it are in the new timeline's history too;
 * writes past it were never confirmed by the standby that took over and are gone. The switch point is
 * at or before the new primary's current position, so that position bounds the wait.
 */
export function positionToReach(token: ConsistencyToken, primary: { timeline: number | null; lsn: Lsn | null }): Lsn {
  if (isPrimaryOnly(token) || token.timeline === null || primary.timeline === null || primary.lsn === null) {
    return token.lsn;
  }
  return token.timeline < primary.timeline && primary.lsn < token.lsn ? primary.lsn : token.lsn;
}
