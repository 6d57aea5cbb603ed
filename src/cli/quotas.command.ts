import { parseArgs } from "node:util";
import { ensureTenant } from "../tenancy/api-keys.ts";
import { QUOTA_NAMES, type QuotaName, setTenantQuotas, tenantQuotas } from "../tenancy/quotas.ts";
import { asOwner } from "./as-owner.ts";
import { UsageError } from "./usage.ts";

const flag = (name: QuotaName) => name.replaceAll("_", "-");

/** `pgrag quotas show|set --tenant NAME [--collections N|default] …`: a tenant's own quotas. */
export async function runQuotas(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tenant: { type: "string" },
      collections: { type: "string" },
      "running-imports": { type: "string" },
      files: { type: "string" },
      "running-batches": { type: "string" },
      "stored-bytes": { type: "string" },
    },
  });
  const given: Record<string, string | undefined> = values;
  const [action] = positionals;
  const tenant = values.tenant;
  if (typeof tenant !== "string") throw new UsageError("quotas needs --tenant NAME");
  const changes: Partial<Record<QuotaName, number | null>> = {};
  for (const name of QUOTA_NAMES) {
    const text = given[flag(name)];
    if (text === undefined) continue;
    const value = text === "default" ? null : Number(text);
    if (value !== null && (!Number.isInteger(value) || value < 0)) {
      throw new UsageError(`--${flag(name)} takes a whole number or "default", not "${text}"`);
    }
    changes[name] = value;
  }
  if (action === "set" && Object.keys(changes).length === 0) {
    throw new UsageError(`quotas set needs one of ${QUOTA_NAMES.map((n) => `--${flag(n)}`).join(", ")}`);
  }
  if (action !== "set" && action !== "show") throw new UsageError("quotas takes show or set");
  await asOwner(async (transaction) => {
    const own = await transaction(async (tx) => {
      const tenantId = await ensureTenant(tx, tenant);
      if (action === "set") await setTenantQuotas(tx, tenantId, changes);
      return tenantQuotas(tx, tenantId);
    });
    for (const name of QUOTA_NAMES) process.stdout.write(`${name}: ${own[name] ?? "default"}\n`);
  });
}
