import type { Kysely } from "kysely";
import type { JSONWebKeySet } from "jose";
import type { Database } from "../db/database.ts";

/** A tenant's identity provider: who issues its end users' tokens, for whom, and with which keys. */
export interface IdentityProvider {
  readonly issuer: string;
  readonly audience: string;
  /** Where its public keys are published (fetched again when a token names a key not seen yet)… */
  readonly jwksUrl: string | null;
  /** …or the keys themselves. */
  readonly jwks: JSONWebKeySet | null;
  /** The claim holding the user's id, and the one holding the user's groups (a list of strings). */
  readonly userClaim: string;
  readonly groupsClaim: string;
  /** Whether the tenant's read-only, tenant-wide keys must bring an end user. */
  readonly requireEndUser: boolean;
}

export async function findIdentityProvider(db: Kysely<Database>, tenantId: string): Promise<IdentityProvider | null> {
  const row = await db
    .selectFrom("identity_providers")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .executeTakeFirst();
  if (!row) return null;
  return {
    issuer: row.issuer,
    audience: row.audience,
    jwksUrl: row.jwks_url,
    jwks: row.jwks as JSONWebKeySet | null,
    userClaim: row.user_claim,
    groupsClaim: row.groups_claim,
    requireEndUser: row.require_end_user,
  };
}

export async function saveIdentityProvider(
  db: Kysely<Database>,
  tenantId: string,
  provider: IdentityProvider,
): Promise<void> {
  const row = {
    issuer: provider.issuer,
    audience: provider.audience,
    jwks_url: provider.jwksUrl,
    jwks: provider.jwks ? JSON.stringify(provider.jwks) : null,
    user_claim: provider.userClaim,
    groups_claim: provider.groupsClaim,
    require_end_user: provider.requireEndUser,
  };
  await db
    .insertInto("identity_providers")
    .values({ tenant_id: tenantId, ...row })
    .onConflict((oc) => oc.column("tenant_id").doUpdateSet({ ...row, updated_at: new Date() }))
    .execute();
}

export async function deleteIdentityProvider(db: Kysely<Database>, tenantId: string): Promise<boolean> {
  const result = await db.deleteFrom("identity_providers").where("tenant_id", "=", tenantId).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
