import { parseArgs } from "node:util";
import { createApiKey, ensureTenant, listApiKeys, revokeApiKey } from "../tenancy/api-keys.ts";
import { PRINCIPAL_PATTERN, SCOPES, type Scope } from "../tenancy/principal.ts";
import { asOwner } from "./as-owner.ts";
import { UsageError } from "./usage.ts";

/** `pgrag keys create|list|revoke`. */
export async function runKeys(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tenant: { type: "string" },
      name: { type: "string" },
      scopes: { type: "string" },
      principals: { type: "string" },
    },
  });
  const [action, keyId] = positionals;
  await asOwner(async (transaction) => {
    if (action === "create") {
      if (!values.tenant) throw new UsageError("keys create needs --tenant NAME");
      const scopes = (values.scopes ?? "read,write").split(",").map((s) => s.trim());
      const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
      if (bad.length > 0 || scopes.length === 0)
        throw new UsageError(`--scopes takes ${SCOPES.join(", ")}; not ${bad.join(", ")}`);
      const principals = values.principals?.split(",").map((p) => p.trim()) ?? null;
      const wrong = principals?.filter((p) => !PRINCIPAL_PATTERN.test(p)) ?? [];
      if (wrong.length > 0 || principals?.length === 0)
        throw new UsageError(`--principals takes user:ID and group:ID, comma-separated; not ${wrong.join(", ")}`);
      const tenant = values.tenant;
      const value = await transaction(async (tx) => {
        const tenantId = await ensureTenant(tx, tenant);
        const name = values.name ?? "cli";
        return { tenantId, ...(await createApiKey(tx, { tenantId, name, scopes: scopes as Scope[], principals })) };
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
          `${k.id}  pgr_${k.prefix}_…  ${k.name}  [${k.scopes.join(",")}]  reads as ${k.principals?.join(",") ?? "the whole tenant"}  ${k.revoked_at ? `revoked ${k.revoked_at.toISOString()}` : "active"}\n`,
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
