import { type Kysely, sql } from "kysely";
import type { Database } from "../db/database.ts";

export interface StoredMessage {
  readonly id: string;
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
  readonly status: "complete" | "partial" | "failed";
  readonly citations: unknown;
  readonly promptTokens: number | null;
  readonly completionTokens: number | null;
  readonly model: string | null;
  /** The user's rating of an answer and its comment, if given. */
  readonly feedback: AnswerFeedback | null;
  readonly createdAt: Date;
}

export interface AnswerFeedback {
  readonly rating: "up" | "down";
  readonly comment: string | null;
}

export interface Conversation {
  readonly id: string;
  readonly collectionId: string | null;
  readonly title: string | null;
  readonly createdAt: Date;
}

export async function findConversation(
  db: Kysely<Database>,
  tenantId: string,
  id: string,
): Promise<Conversation | undefined> {
  const row = await db
    .selectFrom("conversations")
    .select(["id", "collection_id", "title", "created_at"])
    .where("tenant_id", "=", tenantId)
    .where("id", "=", id)
    .executeTakeFirst();
  return row && { id: row.id, collectionId: row.collection_id, title: row.title, createdAt: row.created_at };
}

export interface ConversationSummary extends Conversation {
  readonly updatedAt: Date;
  readonly messages: number;
}

/**
 * The tenant's conversations, most recently active first, `limit` after the conversation `after`
 * (keyset on (updated_at, id): a page costs the same however deep it is).
 */
export async function listConversations(
  db: Kysely<Database>,
  tenantId: string,
  page: { after: string | null; limit: number },
): Promise<ConversationSummary[]> {
  const { rows } = await sql<{
    id: string;
    collection_id: string | null;
    title: string | null;
    created_at: Date;
    updated_at: Date;
    messages: number;
  }>`
    SELECT c.id, c.collection_id, c.title, c.created_at, c.updated_at,
           (SELECT count(*)::int FROM messages m WHERE m.tenant_id = c.tenant_id AND m.conversation_id = c.id) AS messages
    FROM conversations c
    WHERE c.tenant_id = ${tenantId}::uuid
      AND (${page.after}::uuid IS NULL
           OR (c.updated_at, c.id) < (SELECT a.updated_at, a.id FROM conversations a WHERE a.id = ${page.after}::uuid))
    ORDER BY c.updated_at DESC, c.id DESC
    LIMIT ${page.limit}
  `.execute(db);
  return rows.map((r) => ({
    id: r.id,
    collectionId: r.collection_id,
    title: r.title,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    messages: r.messages,
  }));
}

export async function listMessages(
  db: Kysely<Database>,
  tenantId: string,
  conversationId: string,
): Promise<StoredMessage[]> {
  const rows = await db
    .selectFrom("messages")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("conversation_id", "=", conversationId)
    .orderBy("id")
    .execute();
  return rows.map((r) => ({
    id: String(r.id),
    role: r.role,
    content: r.content,
    status: r.status,
    citations: r.citations,
    promptTokens: r.prompt_tokens,
    completionTokens: r.completion_tokens,
    model: r.model,
    feedback: r.feedback_rating ? { rating: r.feedback_rating, comment: r.feedback_comment } : null,
    createdAt: r.created_at,
  }));
}

/** How many conversations the tenant started in the last day, counting no further than `limit`. */
export async function conversationsStartedToday(
  db: Kysely<Database>,
  tenantId: string,
  limit: number,
): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM (
      SELECT 1 FROM conversations WHERE tenant_id = ${tenantId} AND created_at > now() - interval '1 day' LIMIT ${limit}
    ) AS recent
  `.execute(db);
  return rows[0]?.n ?? 0;
}

/** A new conversation on the tenant's collection of that name; undefined when there is no such collection. */
export async function insertConversation(
  db: Kysely<Database>,
  input: { tenantId: string; collectionName: string; title: string },
): Promise<string | undefined> {
  const row = await db
    .insertInto("conversations")
    .columns(["tenant_id", "collection_id", "title"])
    .expression(
      db
        .selectFrom("collections")
        .select(["tenant_id", "id", sql<string>`${input.title.slice(0, 200)}::text`.as("title")])
        .where("tenant_id", "=", input.tenantId)
        .where("name", "=", input.collectionName),
    )
    .returning("id")
    .executeTakeFirst();
  return row?.id;
}

export async function insertMessage(
  db: Kysely<Database>,
  input: {
    tenantId: string;
    conversationId: string;
    role: "user" | "assistant";
    content: string;
    status?: "complete" | "partial" | "failed";
    citations?: unknown;
    promptTokens?: number | null;
    completionTokens?: number | null;
    model?: string | null;
  },
): Promise<string> {
  const row = await db
    .insertInto("messages")
    .values({
      tenant_id: input.tenantId,
      conversation_id: input.conversationId,
      role: input.role,
      content: input.content,
      status: input.status ?? "complete",
      citations: JSON.stringify(input.citations ?? []),
      prompt_tokens: input.promptTokens ?? null,
      completion_tokens: input.completionTokens ?? null,
      model: input.model ?? null,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  await db
    .updateTable("conversations")
    .set({ updated_at: sql`now()` })
    .where("id", "=", input.conversationId)
    .execute();
  return String(row.id);
}

/**
 * Stores the user's feedback on an assistant message of the tenant (a later rating replaces it);
 * false when there is no such answer. Row-level security already scopes this; the tenant filter keeps
 * it so where RLS does not bind (the embedded superuser): another tenant's id is never confirmed.
 */
export async function storeFeedback(
  db: Kysely<Database>,
  tenantId: string,
  messageId: string,
  feedback: AnswerFeedback,
): Promise<boolean> {
  const row = await db
    .updateTable("messages")
    .set({ feedback_rating: feedback.rating, feedback_comment: feedback.comment, feedback_at: sql`now()` })
    .where("tenant_id", "=", tenantId)
    .where("id", "=", messageId)
    .where("role", "=", "assistant")
    .returning("id")
    .executeTakeFirst();
  return row !== undefined;
}

/** Gives a conversation of the tenant a new title; false when there is no such conversation. */
export async function renameConversation(
  db: Kysely<Database>,
  where: { tenantId: string; id: string },
  title: string,
): Promise<boolean> {
  const result = await db
    .updateTable("conversations")
    .set({ title })
    .where("tenant_id", "=", where.tenantId)
    .where("id", "=", where.id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Deletes a conversation of the tenant with its messages; false when there is no such conversation. */
export async function deleteConversation(
  db: Kysely<Database>,
  where: { tenantId: string; id: string },
): Promise<boolean> {
  const result = await db
    .deleteFrom("conversations")
    .where("tenant_id", "=", where.tenantId)
    .where("id", "=", where.id)
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/**
 * Locks a conversation of the tenant for an answer to be added: whether its last message is a
 * question still waiting for one ("awaiting"), or not ("answered"), or there is no such conversation.
 */
export async function lockForAnswer(
  db: Kysely<Database>,
  where: { tenantId: string; id: string },
): Promise<"missing" | "answered" | "awaiting"> {
  const conversation = await db
    .selectFrom("conversations")
    .select("id")
    .where("tenant_id", "=", where.tenantId)
    .where("id", "=", where.id)
    .forUpdate()
    .executeTakeFirst();
  if (!conversation) return "missing";
  const last = await db
    .selectFrom("messages")
    .select("role")
    .where("tenant_id", "=", where.tenantId)
    .where("conversation_id", "=", where.id)
    .orderBy("id", "desc")
    .limit(1)
    .executeTakeFirst();
  return last?.role === "user" ? "awaiting" : "answered";
}
