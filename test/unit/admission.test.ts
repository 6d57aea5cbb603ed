import { Registry } from "prom-client";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AdmissionControl } from "../../src/inference/admission.ts";

const control = (maxConcurrent: number, maxQueued: number, maxWaitMs = 60_000) =>
  new AdmissionControl({ maxConcurrent, maxQueued, maxWaitMs }, new Registry());

/** Requests a slot and records, in `log`, when it is admitted or refused. */
function request(admission: AdmissionControl, tenant: string, log: string[]) {
  return admission.acquire(tenant).then(
    (release) => {
      log.push(tenant);
      return release;
    },
    (error: Error) => {
      log.push(`${tenant}:refused`);
      throw error;
    },
  );
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

afterEach(() => {
  vi.useRealTimers();
});

describe("admission control", () => {
  it("admits up to the concurrency at once and queues the rest", async () => {
    const admission = control(2, 10);
    const log: string[] = [];
    const [a, b] = [request(admission, "t1", log), request(admission, "t1", log)];
    void request(admission, "t1", log);
    await settle();
    expect(log).toEqual(["t1", "t1"]);
    (await a)();
    await settle();
    expect(log).toEqual(["t1", "t1", "t1"]);
    (await b)();
  });

  it("serves waiting tenants in turn, whatever their arrival rates (3:1 arrivals, 1:1 service)", async () => {
    const admission = control(1, 100);
    const log: string[] = [];
    const holder = await admission.acquire("busy");
    // Each request hands its slot on as soon as it gets it, so the log is the order of admission.
    const served = (tenant: string) => request(admission, tenant, log).then((release) => release());
    const pending: Promise<void>[] = [];
    // Tenant a asks three times as often as b, all while the one slot is taken.
    for (let i = 0; i < 4; i++) pending.push(served("a"), served("a"), served("a"), served("b"));
    holder();
    await Promise.all(pending);
    expect(log).toEqual(["a", "b", "a", "b", "a", "b", "a", "b", "a", "a", "a", "a", "a", "a", "a", "a"]);
  });

  it("when the queue is full, lets a newcomer displace the newest waiter of the tenant that waits most", async () => {
    const admission = control(1, 3);
    const log: string[] = [];
    const holder = await admission.acquire("greedy");
    const greedy = [
      request(admission, "greedy", log),
      request(admission, "greedy", log),
      request(admission, "greedy", log),
    ] as const;
    const polite = request(admission, "polite", log);
    await expect(greedy[2]).rejects.toMatchObject({ code: "rate_limited", retryAfterSeconds: 1 });
    // A tenant that already waits as much as the others gets the 429 itself.
    await expect(request(admission, "greedy", log)).rejects.toMatchObject({ code: "rate_limited" });
    holder();
    (await greedy[0])();
    (await polite)();
    (await greedy[1])();
    expect(log).toEqual(["greedy:refused", "greedy:refused", "greedy", "polite", "greedy"]);
  });

  it("refuses a waiter after the longest wait, and drops one whose client went away", async () => {
    vi.useFakeTimers();
    const admission = control(1, 10, 1_000);
    const holder = await admission.acquire("t");
    const waiting = admission.acquire("t");
    const leaving = new AbortController();
    const gone = admission.acquire("u", { signal: leaving.signal });
    leaving.abort();
    await expect(gone).rejects.toMatchObject({ code: "timeout" });
    vi.advanceTimersByTime(1_001);
    await expect(waiting).rejects.toMatchObject({ code: "rate_limited" });
    holder();
    // Nobody waits any more: the next request is admitted at once.
    const next = await admission.acquire("v");
    next();
  });

  it("admits interactive requests before batch ones, and batch ones only into capacity interactive leaves free", async () => {
    const admission = new AdmissionControl(
      { maxConcurrent: 3, maxQueued: 10, maxWaitMs: 60_000, reservedForInteractive: 1 },
      new Registry(),
    );
    const log: string[] = [];
    const batch = (tenant: string) =>
      admission.acquire(tenant, { priority: "batch" }).then((release) => {
        log.push(`batch:${tenant}`);
        return release;
      });
    // Batch work fills the capacity but the reserved slot: two start, the third waits.
    const [b1, b2] = [batch("x"), batch("x")];
    const b3 = batch("x");
    await settle();
    expect(log).toEqual(["batch:x", "batch:x"]);
    // The reserved slot lets an interactive request start at once.
    const i1 = await request(admission, "chat", log);
    expect(log.at(-1)).toBe("chat");
    // Full now: an interactive request waits, and when a batch slot frees it goes first.
    const i2 = request(admission, "chat", log);
    await settle();
    (await b1)();
    await settle();
    expect(log).toEqual(["batch:x", "batch:x", "chat", "chat"]);
    // Interactive requests end: the waiting batch request takes the capacity they leave.
    i1();
    (await i2)();
    await settle();
    expect(log.at(-1)).toBe("batch:x");
    (await b2)();
    (await b3)();
    expect(admission.busySeconds()).toBeGreaterThan(0);
  });

  it("with preemption, batch work takes every slot and an interactive request takes the newest batch one's", async () => {
    const registry = new Registry();
    const admission = new AdmissionControl(
      { maxConcurrent: 2, maxQueued: 10, maxWaitMs: 60_000, preemptBatch: true },
      registry,
    );
    const stopped: string[] = [];
    const batch = (name: string) => admission.acquire("x", { priority: "batch", preempt: () => stopped.push(name) });
    const older = await batch("older");
    const newer = await batch("newer");
    // Full of batch work: the next batch request waits; an interactive one starts at once.
    const log: string[] = [];
    const waitingBatch = batch("waiting").then((release) => {
      log.push("batch");
      return release;
    });
    const chat = await request(admission, "chat", log);
    expect(stopped).toEqual(["newer"]);
    // The stopped request's release frees nothing: its slot is the chat's now.
    newer();
    await settle();
    expect(log).toEqual(["chat"]);
    // A second interactive request stops the other batch request; a third has none left to stop and waits.
    const chat2 = await request(admission, "chat", log);
    expect(stopped).toEqual(["newer", "older"]);
    older();
    const chat3 = request(admission, "chat", log);
    await settle();
    expect(log).toEqual(["chat", "chat"]);
    // Slots freed go to the waiting interactive request first, then to batch work.
    chat();
    await settle();
    expect(log).toEqual(["chat", "chat", "chat"]);
    chat2();
    await settle();
    expect(log).toEqual(["chat", "chat", "chat", "batch"]);
    (await chat3)();
    (await waitingBatch)();
    const preemptions = await registry.getSingleMetric("pgrag_inference_preemptions_total")?.get();
    expect(preemptions?.values[0]?.value).toBe(2);
  });

  it("without preemption, or for requests that cannot be stopped, an interactive request waits", async () => {
    for (const preemptBatch of [false, true]) {
      const admission = new AdmissionControl(
        { maxConcurrent: 1, maxQueued: 10, maxWaitMs: 60_000, preemptBatch },
        new Registry(),
      );
      const stopped: string[] = [];
      const holder = await admission.acquire("x", {
        priority: "batch",
        preempt: preemptBatch ? undefined : () => stopped.push("batch"),
      });
      const log: string[] = [];
      const chat = request(admission, "chat", log);
      await settle();
      expect(log).toEqual([]);
      expect(stopped).toEqual([]);
      holder();
      (await chat)();
      expect(log).toEqual(["chat"]);
    }
  });

  it("shares batch capacity between tenants in turn, and never refuses batch work", async () => {
    const admission = new AdmissionControl({ maxConcurrent: 1, maxQueued: 0, maxWaitMs: 1 }, new Registry());
    const log: string[] = [];
    const holder = await admission.acquire("first", { priority: "batch" });
    const served = (tenant: string) =>
      admission.acquire(tenant, { priority: "batch" }).then((release) => {
        log.push(tenant);
        release();
      });
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 3; i++) pending.push(served("a"), served("a"), served("a"), served("b"));
    holder();
    await Promise.all(pending);
    expect(log).toEqual(["a", "b", "a", "b", "a", "b", "a", "a", "a", "a", "a", "a"]);
  });

  it("reports queue depth by class and tenant, wait time by class and tenant, and busy time", async () => {
    const registry = new Registry();
    const admission = new AdmissionControl({ maxConcurrent: 1, maxQueued: 10, maxWaitMs: 60_000 }, registry);
    const holder = await admission.acquire("a");
    const waiting = admission.acquire("b", { priority: "batch" });
    const depth = await registry.getSingleMetric("pgrag_inference_queue_depth")?.get();
    expect(depth?.values).toEqual([{ labels: { class: "batch", tenant: "b" }, value: 1 }]);
    holder();
    (await waiting)();
    const waits = await registry.getSingleMetric("pgrag_inference_wait_seconds")?.get();
    const counts = (
      waits?.values as { metricName?: string; labels: Record<string, string | number>; value: number }[]
    ).filter((v) => v.metricName === "pgrag_inference_wait_seconds_count");
    expect(counts?.map((v) => [v.labels.class, v.labels.tenant, v.value])).toEqual([
      ["interactive", "a", 1],
      ["batch", "b", 1],
    ]);
    const busy = await registry.getSingleMetric("pgrag_inference_busy_seconds_total")?.get();
    expect(busy?.values[0]?.value).toBeGreaterThanOrEqual(0);
  });
});
