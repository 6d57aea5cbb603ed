import type { App } from "../../src/app.ts";
import { adminTransaction } from "../../src/tenancy/admin-transaction.ts";
import { createApiKey, ensureTenant } from "../../src/tenancy/api-keys.ts";
import type { Scope } from "../../src/tenancy/principal.ts";

/** A new tenant with a key, so every test's data is its own; created as the owner, like the CLI. */
export async function newTenantKey(app: App, scopes: Scope[] = ["read", "write"], name = `t-${crypto.randomUUID()}`) {
  return adminTransaction(app, async (tx) => {
    const tenantId = await ensureTenant(tx, name);
    return { tenantId, ...(await createApiKey(tx, { tenantId, name: "test", scopes })) };
  });
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

/** JSON (or raw) requests through `app.request`, with the key and an optional consistency token. */
export async function api<T = Record<string, unknown>>(
  app: App,
  method: string,
  path: string,
  options: {
    key?: string;
    json?: unknown;
    body?: BodyInit;
    contentType?: string;
    token?: string | null;
    headers?: Record<string, string>;
  } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key) headers.Authorization = `Bearer ${options.key}`;
  if (options.token) headers["X-Consistency-Token"] = options.token;
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers["Content-Type"] = "application/json";
  } else if (options.contentType) {
    headers["Content-Type"] = options.contentType;
  }
  const response = await app.http.request(path, { method, headers, body });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as T, headers: response.headers };
}
