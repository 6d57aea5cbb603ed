import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT, UnsecuredJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { adminTransaction } from "../../../src/tenancy/admin-transaction.ts";
import { createApiKey } from "../../../src/tenancy/api-keys.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

const ISSUER = "https://login.example.com/";
const AUDIENCE = "pgrag";

/** The identity provider's published keys, changed by the test as a provider rotates them. */
let published: JWK[] = [];
const jwksServer = createServer((_, response) => {
  response.setHeader("content-type", "application/json");
  response.end(JSON.stringify({ keys: published }));
});

async function signingKey(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" } };
}
type SigningKey = Awaited<ReturnType<typeof signingKey>>;

function token(
  key: SigningKey,
  claims: JWTPayload,
  options: { expiresIn?: string; issuer?: string; audience?: string } = {},
) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid: key.kid })
    .setIssuedAt()
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setExpirationTime(options.expiresIn ?? "5m")
    .sign(key.privateKey);
}

describe("end users", () => {
  let app: App;
  let admin: string;
  let reader: string;
  let tenantId: string;
  let first: SigningKey;

  const search = (user: string | undefined, key = reader) =>
    app.http.request("/v1/search", {
      method: "POST",
      headers: {
        Authorization: `Bearer ${key}`,
        "Content-Type": "application/json",
        ...(user !== undefined ? { "X-End-User-Token": user } : {}),
      },
      body: JSON.stringify({ collection: "docs", query: "handbook", mode: "bm25", k: 10 }),
    });
  const found = async (user: string | undefined) => {
    const response = await search(user);
    const body = (await response.json()) as { results?: { external_id: string }[]; error?: { message: string } };
    return {
      status: response.status,
      ids: (body.results ?? []).map((r) => r.external_id).sort(),
      error: body.error?.message,
    };
  };
  const register = (extra: Record<string, unknown> = {}) =>
    api(app, "PUT", "/v1/identity-provider", {
      key: admin,
      json: {
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks_url: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`,
        ...extra,
      },
    });

  beforeAll(async () => {
    await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
    first = await signingKey("first");
    published = [first.jwk];
    app = await startTestApp({ PGRAG_JWKS_ALLOW_LOOPBACK: "true", PGRAG_JWKS_COOLDOWN_MS: "0" }, { workers: true });
    ({ key: admin, tenantId } = await newTenantKey(app, ["read", "write", "admin"]));
    reader = await adminTransaction(
      app,
      async (tx) => (await createApiKey(tx, { tenantId, name: "reader", scopes: ["read"] })).key,
    );
    await createCollection(app, admin, "docs");
    await api(app, "POST", "/v1/collections/docs/documents", {
      key: admin,
      json: {
        documents: [
          { external_id: "open", content: "The staff handbook, for everyone.", access: ["*"] },
          { external_id: "hr", content: "The HR handbook: salaries and reviews.", access: ["group:hr"] },
          { external_id: "alice", content: "Alice's own handbook notes.", access: ["user:alice"] },
        ],
      },
    });
    await waitForDocuments(app, admin, "docs", ["open", "hr", "alice"]);
    expect((await register()).status).toBe(200);
  });
  afterAll(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

  it("reads as the user a valid token names: the user's id and groups are its principals", async () => {
    expect(await found(await token(first, { sub: "alice" }))).toMatchObject({ status: 200, ids: ["alice", "open"] });
    expect(await found(await token(first, { sub: "bob", groups: ["hr"] }))).toMatchObject({
      status: 200,
      ids: ["hr", "open"],
    });
    // No token: the tenant-wide key reads everything, as the tenant allows for now.
    expect(await found(undefined)).toMatchObject({ status: 200, ids: ["alice", "hr", "open"] });
  });

  it("refuses every token it cannot trust, each with a clear 401 or 403", async () => {
    const stranger = await signingKey("first");
    const cases: [string, Promise<string> | string, number, RegExp][] = [
      ["expired", token(first, { sub: "alice" }, { expiresIn: "-1m" }), 401, /has expired/],
      [
        "another issuer",
        token(first, { sub: "alice" }, { issuer: "https://evil.example/" }),
        401,
        /not issued by the tenant's provider/,
      ],
      [
        "another audience",
        token(first, { sub: "alice" }, { audience: "someone-else" }),
        401,
        /not meant for this audience/,
      ],
      ["another key", token(stranger, { sub: "alice" }), 401, /signature does not verify/],
      [
        "alg none",
        new UnsecuredJWT({ sub: "alice" }).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime("5m").encode(),
        401,
        /not signed with a public-key algorithm|not a valid signed JWT/,
      ],
      ["no user claim", token(first, { name: "Alice" }), 403, /no usable 'sub' claim/],
      ["groups not a list", token(first, { sub: "alice", groups: "hr" }), 403, /'groups' claim is not a list/],
      ["not a JWT", "not-a-token", 401, /not a valid signed JWT/],
      // A logged-out session's empty header is refused, not read as "no end user".
      ["empty", "", 401, /not a valid signed JWT/],
    ];
    for (const [name, given, status, message] of cases) {
      const { status: got, error } = await found(await given);
      expect([name, got], name).toEqual([name, status]);
      expect(error, name).toMatch(message);
    }
  });

  it("follows the provider's key rotation: a token signed with a newly published key is accepted", async () => {
    const second = await signingKey("second");
    published = [second.jwk];
    expect(await found(await token(second, { sub: "alice" }))).toMatchObject({ status: 200, ids: ["alice", "open"] });
    published = [first.jwk, second.jwk];
  });

  it("keeps each user's conversations and feedback to that user", async () => {
    const alice = await token(first, { sub: "alice" });
    const bob = await token(first, { sub: "bob", groups: ["hr"] });
    const as = (user: string) => ({
      "X-End-User-Token": user,
      Authorization: `Bearer ${reader}`,
      "Content-Type": "application/json",
    });
    const ask = await app.http.request("/v1/chat", {
      method: "POST",
      headers: as(alice),
      body: JSON.stringify({ collection: "docs", question: "What is in the handbook?", stream: false }),
    });
    const asked = (await ask.json()) as { conversation_id: string; message_id: string; consistency_token: string };
    expect(ask.status).toBe(200);
    const headers = (user: string) => ({ ...as(user), "X-Consistency-Token": asked.consistency_token });
    const list = async (user: string) =>
      (
        (await (await app.http.request("/v1/conversations", { headers: headers(user) })).json()) as {
          data: { id: string }[];
        }
      ).data.map((c) => c.id);
    expect(await list(alice)).toContain(asked.conversation_id);
    expect(await list(bob)).not.toContain(asked.conversation_id);
    const conversation = `/v1/conversations/${asked.conversation_id}`;
    expect((await app.http.request(conversation, { headers: headers(bob) })).status).toBe(404);
    expect((await app.http.request(conversation, { headers: headers(alice) })).status).toBe(200);
    const followUp = await app.http.request("/v1/chat", {
      method: "POST",
      headers: headers(bob),
      body: JSON.stringify({
        collection: "docs",
        question: "And then?",
        conversation_id: asked.conversation_id,
        stream: false,
      }),
    });
    expect(followUp.status).toBe(404);
    const feedback = (user: string) =>
      app.http.request("/v1/feedback", {
        method: "POST",
        headers: headers(user),
        body: JSON.stringify({ message_id: asked.message_id, rating: "down" }),
      });
    expect((await feedback(bob)).status).toBe(404);
    expect((await feedback(alice)).status).toBe(200);
    // The tenant-wide key (an administrator's tool) sees every conversation.
    const all = await api<{ data: { id: string }[] }>(app, "GET", "/v1/conversations", {
      key: admin,
      token: asked.consistency_token,
    });
    expect(all.body.data.map((c) => c.id)).toContain(asked.conversation_id);
  });

  it("lets a tenant require an end user of its read-only tenant-wide keys", async () => {
    expect((await register({ require_end_user: true })).status).toBe(200);
    const refused = await found(undefined);
    expect(refused.status).toBe(403);
    expect(refused.error).toMatch(/reads only as an end user: send the user's token as X-End-User-Token/);
    expect(await found(await token(first, { sub: "alice" }))).toMatchObject({ status: 200, ids: ["alice", "open"] });
    // An administrator's key still reads the whole tenant; a scoped key reads as its principals and takes no token.
    expect((await search(undefined, admin)).status).toBe(200);
    const scoped = await adminTransaction(
      app,
      async (tx) =>
        (await createApiKey(tx, { tenantId, name: "service", scopes: ["read"], principals: ["group:hr"] })).key,
    );
    expect((await search(undefined, scoped)).status).toBe(200);
    expect((await search(await token(first, { sub: "alice" }), scoped)).status).toBe(400);
    expect((await register({ require_end_user: false })).status).toBe(200);
  });

  it("takes a provider's registration only from an administrator, with keys it can check", async () => {
    expect((await api(app, "PUT", "/v1/identity-provider", { key: reader, json: {} })).status).toBe(403);
    const both = await register({ jwks: { keys: [first.jwk] } });
    expect(both.status).toBe(400);
    const plain = await api<{ error: { message: string } }>(app, "PUT", "/v1/identity-provider", {
      key: admin,
      json: { issuer: ISSUER, audience: AUDIENCE, jwks_url: "http://10.0.0.1/jwks.json" },
    });
    expect([plain.status, plain.body.error.message]).toEqual([400, expect.stringMatching(/jwks_url must be https/)]);
    // Keys are fetched from pgrag's own network: a URL into it (a cloud's metadata service, a private
    // host) is refused as given; one whose name resolves there, at fetch time (unit-tested in public-fetch).
    // This app allows loopback (its tests publish keys on this machine): private networks stay refused.
    for (const inside of [
      "https://169.254.169.254/jwks.json",
      "https://10.1.2.3/jwks.json",
      "https://[fd00::1]:8443/k",
    ]) {
      const refused = await api<{ error: { message: string } }>(app, "PUT", "/v1/identity-provider", {
        key: admin,
        json: { issuer: ISSUER, audience: AUDIENCE, jwks_url: inside },
      });
      expect([refused.status, refused.body.error.message], inside).toEqual([
        400,
        expect.stringMatching(/must not point at this machine or a private network/),
      ]);
    }
    const shown = await api<{ identity_provider: { issuer: string } }>(app, "GET", "/v1/identity-provider", {
      key: admin,
    });
    expect(shown.body.identity_provider.issuer).toBe(ISSUER);
  });
});
