/**
 * `npm run bench:router`: the latency the router adds to a read. The same primary-key lookup runs
 * (a) through `router.read` and (b) on a plain pg pool straight to the same replica's PgBouncer
 * database, interleaved in rounds so that both see the same machine noise. Prints p50/p95 of each,
 * the added latency and the ratio. Target: ≤ 0.5 ms added at p50.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/logger.ts";
import { adminTransaction } from "../src/tenancy/admin-transaction.ts";
import { ensureTenant } from "../src/tenancy/api-keys.ts";
import { formatMs, percentile, timed } from "./stats.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const PER_ROUND = Number(process.env.BENCH_PER_ROUND ?? 250);

const config = loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn" });
const replicaUrl = config.database.replicaUrls[0];
if (!replicaUrl) throw new Error("bench:router needs at least one replica (PGRAG_REPLICA_URLS)");
// One replica only, so that routed and direct reads hit the same server.
const app = createApp(loadConfig({ ...process.env, PGRAG_LOG_LEVEL: "warn", PGRAG_REPLICA_URLS: replicaUrl }), {
  logger: createLogger({ logLevel: "warn" }),
});
await app.start({ listen: false });
const direct = new pg.Pool({ connectionString: replicaUrl, max: config.database.poolSize });

// A tenant (created by the owner, as the admin CLI does), and a write of the app's (a collection
// row under row-level security) for a real token.
const tenantId = await adminTransaction(app, (tx) => ensureTenant(tx, `bench-router-${randomUUID()}`));
const { token } = await app.router.write({ tenantId }, (tx) =>
  tx.insertInto("collections").values({ tenant_id: tenantId, name: "bench-router" }).execute(),
);
await app.router.read({ token }, async () => undefined);

// The same primary-key lookup on both paths; embedding_settings has no row-level security, so the
// routed read is one statement like the direct one.
const query = "SELECT model, dimension FROM embedding_settings WHERE singleton";
const lookup = (db: Parameters<Parameters<typeof app.router.read>[1]>[0]) =>
  db.selectFrom("embedding_settings").select(["model", "dimension"]).where("singleton", "=", true).executeTakeFirst();
const routed: number[] = [];
const straight: number[] = [];
const routedWithToken: number[] = [];
const routedAsTenant: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (let i = 0; i < PER_ROUND; i++) {
    straight.push(await timed(() => direct.query(query)));
    routed.push(await timed(() => app.router.read({}, lookup)));
    routedWithToken.push(await timed(() => app.router.read({ token }, lookup)));
    routedAsTenant.push(await timed(() => app.router.read({ tenantId }, lookup)));
  }
}

const row = (name: string, s: number[]) =>
  `${name.padEnd(34)} p50 ${formatMs(percentile(s, 50))}   p95 ${formatMs(percentile(s, 95))}`;
console.log(`bench:router — ${ROUNDS * PER_ROUND} reads per path, sequential, interleaved`);
console.log(row("direct to replica's PgBouncer db", straight));
console.log(row("routed (no token)", routed));
console.log(row("routed (with consistency token)", routedWithToken));
console.log(row("routed as a tenant (RLS transaction)", routedAsTenant));
const added = percentile(routed, 50) - percentile(straight, 50);
const addedToken = percentile(routedWithToken, 50) - percentile(straight, 50);
console.log(
  `added at p50: ${formatMs(added)} (ratio ${(percentile(routed, 50) / percentile(straight, 50)).toFixed(2)}×), target ≤ 0.5 ms`,
);
console.log(
  `added at p50 with token: ${formatMs(addedToken)} (ratio ${(percentile(routedWithToken, 50) / percentile(straight, 50)).toFixed(2)}×)`,
);

await direct.end();
await app.stop();
