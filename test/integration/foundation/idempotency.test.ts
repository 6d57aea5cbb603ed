import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { IdempotentReplay, withIdempotencyKey } from "../../../src/db/idempotency.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { adminCount } from "../../helpers/cluster.ts";

const collectionsNamed = (tenantId: string, name: string) =>
  adminCount("SELECT count(*)::int AS n FROM collections WHERE tenant_id = $1 AND name = $2", [tenantId, name]);

describe("idempotency keys on writes", () => {
  it("a retry with the same key gets the first answer again and writes nothing", async () => {
    const app = await startTestApp();
    const { key, tenantId } = await newTenantKey(app);
    const idempotency = { "Idempotency-Key": randomUUID() };
    const first = await api(app, "POST", "/v1/collections", { key, json: { name: "once" }, headers: idempotency });
    expect(first.status).toBe(201);
    expect(first.headers.get("Idempotent-Replayed")).toBeNull();
    const again = await api(app, "POST", "/v1/collections", { key, json: { name: "once" }, headers: idempotency });
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get("Idempotent-Replayed")).toBe("true");
    expect(again.headers.get("X-Consistency-Token")).toBe(first.headers.get("X-Consistency-Token"));
    expect(await collectionsNamed(tenantId, "once")).toBe(1);
    // Without a key the same request is a new write (here refused: the name is taken).
    expect((await api(app, "POST", "/v1/collections", { key, json: { name: "once" } })).status).toBe(409);
  });

  it("refuses a key reused for a different request, and a key that is not one", async () => {
    const app = await startTestApp();
    const { key, tenantId } = await newTenantKey(app);
    const idempotency = { "Idempotency-Key": randomUUID() };
    expect((await api(app, "POST", "/v1/collections", { key, json: { name: "a" }, headers: idempotency })).status).toBe(
      201,
    );
    const other = await api<{ error: { code: string; message: string } }>(app, "POST", "/v1/collections", {
      key,
      json: { name: "b" },
      headers: idempotency,
    });
    expect(other.status).toBe(422);
    expect(other.body.error.message).toMatch(/already used for a different request; use a new key/);
    expect(await collectionsNamed(tenantId, "b")).toBe(0);
    // Uploads stream: their bodies cannot be compared with an earlier one's, so a key is refused there.
    const upload = await api<{ error: { message: string } }>(app, "PUT", "/v1/collections/a/documents/d1", {
      key,
      json: { content: "text" },
      headers: { "Idempotency-Key": randomUUID() },
    });
    expect(upload.status).toBe(400);
    expect(upload.body.error.message).toMatch(
      /not taken on uploads; a document written by its external id \(PUT\) is idempotent already/,
    );
    for (const bad of ["", "x".repeat(256), "has space", "ünïcode"]) {
      const refused = await api<{ error: { message: string } }>(app, "POST", "/v1/collections", {
        key,
        json: { name: "c" },
        headers: { "Idempotency-Key": bad },
      });
      expect(refused.status, bad).toBe(400);
      expect(refused.body.error.message).toMatch(/Idempotency-Key must be 1-255 visible ASCII characters/);
    }
  });

  it("keys are the tenant's own: another tenant's same key is another request", async () => {
    const app = await startTestApp();
    const a = await newTenantKey(app);
    const b = await newTenantKey(app);
    const idempotency = { "Idempotency-Key": randomUUID() };
    for (const tenant of [a, b]) {
      const created = await api(app, "POST", "/v1/collections", {
        key: tenant.key,
        json: { name: "mine" },
        headers: idempotency,
      });
      expect(created.status).toBe(201);
      expect(created.headers.get("Idempotent-Replayed")).toBeNull();
      expect(await collectionsNamed(tenant.tenantId, "mine")).toBe(1);
    }
  });

  it("concurrent requests with one key write once: the others wait for it and replay or learn it was applied", async () => {
    const app = await startTestApp();
    const { key, tenantId } = await newTenantKey(app);
    const idempotency = { "Idempotency-Key": randomUUID() };
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        api(app, "POST", "/v1/collections", { key, json: { name: "raced" }, headers: idempotency }),
      ),
    );
    expect(await collectionsNamed(tenantId, "raced")).toBe(1);
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 201).length).toBeGreaterThanOrEqual(1);
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
    expect(answers.filter((a) => a.headers.get("Idempotent-Replayed") === null)).toHaveLength(1);
  });

  it("the claim commits with the write: a write that rolled back leaves the key free, a committed one whose answer was lost is reported applied", async () => {
    const app = await startTestApp();
    const { tenantId } = await newTenantKey(app);
    const claim = () => ({ key: randomUUID(), fingerprint: "f", claimedBy: null });
    const insert = (name: string) =>
      app.router.write({ tenantId }, (tx) =>
        tx.insertInto("collections").values({ tenant_id: tenantId, name }).returning("id").executeTakeFirstOrThrow(),
      );

    const failed = claim();
    await expect(
      withIdempotencyKey(failed, () =>
        app.router.write({ tenantId }, async (tx) => {
          await tx.insertInto("collections").values({ tenant_id: tenantId, name: "rolled-back" }).execute();
          throw new Error("the work failed after its insert");
        }),
      ),
    ).rejects.toThrow(/work failed/);
    expect(failed.claimedBy).toBeNull();
    await withIdempotencyKey({ ...failed }, () => insert("rolled-back"));
    expect(await collectionsNamed(tenantId, "rolled-back")).toBe(1);

    // The first attempt commits, its answer is never recorded (the server stopped): the retry is told so.
    const lost = claim();
    await withIdempotencyKey(lost, () => insert("answer-lost"));
    expect(lost.claimedBy).toBe(tenantId);
    const retry = withIdempotencyKey({ ...lost, claimedBy: null }, () => insert("answer-lost"));
    await expect(retry).rejects.toBeInstanceOf(IdempotentReplay);
    await expect(retry).rejects.toMatchObject({ sameRequest: true, answer: { status: null } });
    // Counted as a conflict wherever errors are counted (usage events): the retry did no work.
    await expect(retry).rejects.toMatchObject({ code: "conflict" });
    expect(await collectionsNamed(tenantId, "answer-lost")).toBe(1);
  });
});
