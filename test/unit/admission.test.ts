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
    const gone = admission.acquire("u", leaving.signal);
    leaving.abort();
    await expect(gone).rejects.toMatchObject({ code: "timeout" });
    vi.advanceTimersByTime(1_001);
    await expect(waiting).rejects.toMatchObject({ code: "rate_limited" });
    holder();
    // Nobody waits any more: the next request is admitted at once.
    const next = await admission.acquire("v");
    next();
  });
});
