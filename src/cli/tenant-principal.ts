import type { App } from "../app.ts";
import { adminTransaction } from "../tenancy/admin-transaction.ts";
import { ensureTenant } from "../tenancy/api-keys.ts";
import type { Principal } from "../tenancy/principal.ts";

/** `ingest` and `ask` act for a tenant directly (as the admin would), with no API key. */
export async function principalFor(app: App, tenant: string): Promise<Principal> {
  const tenantId = await adminTransaction(app, (tx) => ensureTenant(tx, tenant));
  return { tenantId, keyId: "cli", scopes: ["read", "write"], principals: null, owner: null };
}

export const common = {
  tenant: { type: "string", default: "default" },
  collection: { type: "string", default: "default" },
} as const;
