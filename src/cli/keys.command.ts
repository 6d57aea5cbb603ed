import { parseArgs } from "node:util";
import { createApiKey, ensureTenant, listApiKeys, revokeApiKey } from "../tenancy/api-keys.ts";
import { SCOPES, type Scope } from "../tenancy/principal.ts";
import { asOwner } from "./as-owner.ts";
import { UsageError } from "./usage.ts";

/** `pgrag keys create|list|revoke`. */
export async function runKeys(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { tenant: { type: "string" }, name: { type: "string" }, scopes: { type: "string" } },
  });
  const [action, keyId] = positionals;
  await asOwner(async (transaction) => {
    if (action === "create") {
      if (!values.tenant) throw new UsageError("keys create needs --tenant NAME");
      const scopes = (values.scopes ?? "read,write").split(",").map((s) => s.trim());
      const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
      if (bad.length > 0 || scopes.length === 0)
        throw new UsageError(`--scopes takes ${SCOPES.join(", ")}; not ${bad.join(", ")}`);
      const tenant = values.tenant;
      const value = await transaction(async (tx) => {
        const tenantId = await ensureTenant(tx, tenant);
        return {
          tenantId,
          ...(await createApiKey(tx, { tenantId, name: values.name ?? "cli", scopes: scopes as Scope[] })),
        };
      });
      process.stdout.write(
        `tenant ${tenant} (${value.tenantId})\nkey id ${value.id}\n\n${value.key}\n\nShown once: store it now.\n`,
      );
    } else if (action === "list") {
      if (!values.tenant) throw new UsageError("keys list needs --tenant NAME");
      const tenant = values.tenant;
      const value = await transaction(async (tx) => listApiKeys(tx, await ensureTenant(tx, tenant)));
      for (const k of value) {
        process.stdout.write(
          `${k.id}  pgr_${k.prefix}_…  ${k.name}  [${k.scopes.join(",")}]  ${k.revoked_at ? `revoked ${k.revoked_at.toISOString()}` : "active"}\n`,
        );
      }
    } else if (action === "revoke") {
      if (!keyId) throw new UsageError("keys revoke needs the key id (see keys list)");
      const value = await transaction((tx) => revokeApiKey(tx, keyId));
      if (!value) throw new Error(`no active key ${keyId}`);
      process.stdout.write(`revoked ${keyId}\n`);
    } else {
      throw new UsageError("keys takes create, list or revoke");
    }
  });
}
