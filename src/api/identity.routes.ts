import { isIP } from "node:net";
import type { MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { z } from "zod";
import type { Config } from "../config.ts";
import { importJWK, type JWK } from "jose";
import { mayFetchFrom } from "../tenancy/public-fetch.ts";
import { InvalidRequestError, NotFoundError } from "../errors.ts";
import type { EndUsers } from "../tenancy/end-users.ts";
import type { Scope } from "../tenancy/principal.ts";
import { setConsistencyToken } from "./consistency.ts";
import type { AppEnv } from "./context.ts";
import { documented } from "./route-docs.ts";
import { validate } from "./validation.ts";

const claimName = z.string().regex(/^[A-Za-z0-9_.:/-]{1,200}$/, "a claim name: letters, digits and _ . : / -");

const jsonWebKey = z.object({ kty: z.string().min(1) }).passthrough();

/**
 * Keys published on this machine over plain http are a development convenience, off unless
 * configured. An address on this machine or a private network is refused here when the URL names
 * one, and at every fetch after DNS otherwise (public-fetch.ts).
 */
function jwksUrl(allowLoopback: boolean) {
  return z
    .url()
    .refine((value) => {
      const url = new URL(value);
      if (url.protocol === "https:") return true;
      const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
      return allowLoopback && loopback && url.protocol === "http:";
    }, "jwks_url must be https (plain http only on this machine, with PGRAG_JWKS_ALLOW_LOOPBACK)")
    .refine((value) => {
      const host = new URL(value).hostname.replace(/^\[|\]$/g, "");
      if (host === "localhost" || host.endsWith(".localhost")) return allowLoopback;
      return !isIP(host) || mayFetchFrom(host, allowLoopback);
    }, "jwks_url must not point at this machine or a private network (the keys are fetched from pgrag's own network)");
}

function providerBody(allowLoopback: boolean) {
  return z
    .object({
      issuer: z.string().min(1).max(1000),
      audience: z.string().min(1).max(1000),
      jwks_url: jwksUrl(allowLoopback).optional(),
      jwks: z
        .object({ keys: z.array(jsonWebKey).min(1).max(50) })
        .strict()
        .optional(),
      user_claim: claimName.default("sub"),
      groups_claim: claimName.default("groups"),
      require_end_user: z.boolean().default(false),
    })
    .strict()
    .refine((b) => (b.jwks_url === undefined) !== (b.jwks === undefined), {
      message: "give exactly one of jwks_url or jwks",
      path: ["jwks_url"],
    });
}

/** The algorithm a key without `alg` is used with, from its type and curve. */
function defaultAlgorithm(key: Record<string, unknown>): string {
  if (key.kty === "EC") return { "P-384": "ES384", "P-521": "ES512" }[String(key.crv)] ?? "ES256";
  return key.kty === "OKP" ? "EdDSA" : "RS256";
}

/** Inline keys are imported once at registration: one jose cannot use is refused now, not on every request. */
async function refuseUnusableKeys(keys: readonly Record<string, unknown>[]): Promise<void> {
  for (const [index, key] of keys.entries()) {
    try {
      await importJWK(key as JWK, typeof key.alg === "string" ? key.alg : defaultAlgorithm(key));
    } catch (error) {
      throw new InvalidRequestError(`jwks.keys[${index}] is not a usable public key: ${(error as Error).message}`);
    }
  }
}

/** The tenant's identity provider for end users' tokens: registered, read and removed by an administrator. */
export function identityRoutes(
  endUsers: EndUsers,
  auth: (scope: Scope) => MiddlewareHandler<AppEnv>,
  options: Config["endUsers"],
): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .put(
      "/v1/identity-provider",
      documented(
        "Register the tenant's identity provider: requests then carry end users' tokens (X-End-User-Token) and read as those users",
        { responses: { 200: "Registered" } },
      ),
      auth("admin"),
      validate("json", providerBody(options.allowLoopbackJwks)),
      async (c) => {
        const body = c.req.valid("json");
        await refuseUnusableKeys(body.jwks?.keys ?? []);
        const provider = {
          issuer: body.issuer,
          audience: body.audience,
          jwksUrl: body.jwks_url ?? null,
          jwks: body.jwks ? { keys: body.jwks.keys as { kty: string }[] } : null,
          userClaim: body.user_claim,
          groupsClaim: body.groups_claim,
          requireEndUser: body.require_end_user,
        };
        const token = await endUsers.register(c.get("principal").tenantId, provider);
        return c.json({ identity_provider: body, consistency_token: setConsistencyToken(c, token) });
      },
    )
    .get(
      "/v1/identity-provider",
      documented("The tenant's identity provider", { responses: { 200: "The provider", 404: "None registered" } }),
      auth("admin"),
      async (c) => {
        const provider = await endUsers.providerOf(c.get("principal").tenantId);
        if (!provider) throw new NotFoundError("this tenant has no identity provider");
        return c.json({
          identity_provider: {
            issuer: provider.issuer,
            audience: provider.audience,
            jwks_url: provider.jwksUrl,
            jwks: provider.jwks,
            user_claim: provider.userClaim,
            groups_claim: provider.groupsClaim,
            require_end_user: provider.requireEndUser,
          },
        });
      },
    )
    .delete(
      "/v1/identity-provider",
      documented("Remove the tenant's identity provider: end-user tokens are refused from then on", {
        responses: { 200: "Removed", 404: "None registered" },
      }),
      auth("admin"),
      async (c) => {
        if (!(await endUsers.remove(c.get("principal").tenantId))) {
          throw new NotFoundError("this tenant has no identity provider");
        }
        return c.json({ deleted: true });
      },
    );
}
