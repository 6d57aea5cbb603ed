/** What an API key may do: read (search, chat), write (collections, documents), admin (everything). */
export const SCOPES = ["read", "write", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

/** `*`, `user:<id>` or `group:<id>`: no whitespace, commas, braces, quotes or backslashes (array literals stay plain). */
export const PRINCIPAL_PATTERN = /^(\*|(user|group):[^\s,{}"\\]{1,200})$/;

/** Who is calling: resolved from an API key. */
export interface Principal {
  readonly tenantId: string;
  readonly keyId: string;
  readonly scopes: readonly Scope[];
  /** The principals document access is checked against; null: the whole tenant (a tenant-wide key). */
  readonly principals: readonly string[] | null;
  /**
   * Whose conversations it sees and starts: `user:<id>` for an end user, `key:<id>` for a key scoped to
   * principals; null for a tenant-wide key (every conversation of the tenant).
   */
  readonly owner: string | null;
}

/** What a transaction needs to run as this requester: its tenant, its principals, and the owner of its conversations. */
export function readerOf(principal: Principal): {
  tenantId: string;
  principals: readonly string[] | null;
  owner: string | null;
} {
  return { tenantId: principal.tenantId, principals: principal.principals, owner: principal.owner };
}
