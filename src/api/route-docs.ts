import type { MiddlewareHandler } from "hono";
import { describeRoute } from "hono-openapi";
import type { OpenAPIV3_1 } from "openapi-types";
import { ERROR_CODES } from "../errors.ts";

/** `{ error: { code, message, request_id } }`, the body of every error answer. */
const errorSchema: OpenAPIV3_1.SchemaObject = {
  type: "object",
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", enum: [...ERROR_CODES] as string[] },
        message: { type: "string" },
        request_id: { type: "string" },
        details: {},
      },
    },
  },
};

const objectSchema: OpenAPIV3_1.SchemaObject = { type: "object" };

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: errorSchema } },
});

/** The errors any authenticated route may answer. */
const COMMON_ERRORS: Record<number, string> = {
  400: "The request is invalid: the message names the field and the problem",
  401: "No API key, or a wrong or revoked one",
  403: "The key lacks the scope the route needs",
  404: "No such resource for this tenant",
  429: "Rate-limited, or a quota reached: the message says which",
  503: "No database node could serve the request now",
};

const consistencyHeader = {
  name: "X-Consistency-Token",
  in: "header",
  required: false,
  description: "The token of your last write: the read is served by a node that has replayed at least that far.",
  schema: { type: "string", example: "0/16B3748" },
} as const;

export interface RouteDocs {
  /** Status → what it means; a status of 400 or more is documented as an error answer. */
  readonly responses: Record<number, string>;
  /** Reachable without an API key (health, the pages). */
  readonly public?: boolean;
  /** A read that honours X-Consistency-Token. */
  readonly consistent?: boolean;
  /** Parameters no validator describes (query fields read by hand, path ids). */
  readonly parameters?: readonly object[];
  /** A body no JSON validator describes (raw text, JSON Lines, multipart). */
  readonly requestBody?: object;
}

/**
 * A route's entry in the OpenAPI document, next to the route itself: the document is generated from
 * the app's routes (openapi.ts), their validators' schemas and these notes, so it cannot name a route
 * the app does not serve or miss one it does.
 */
export function documented(summary: string, docs: RouteDocs): MiddlewareHandler {
  const statuses = { ...(docs.public ? {} : COMMON_ERRORS), ...docs.responses };
  const responses = Object.fromEntries(
    Object.entries(statuses).map(([status, description]) => [
      status,
      Number(status) >= 400
        ? errorResponse(description)
        : { description, content: { "application/json": { schema: objectSchema } } },
    ]),
  );
  const parameters = [...(docs.parameters ?? []), ...(docs.consistent ? [consistencyHeader] : [])];
  return describeRoute({
    summary,
    responses,
    ...(parameters.length > 0 ? { parameters: parameters as never } : {}),
    ...(docs.requestBody ? { requestBody: docs.requestBody as never } : {}),
    ...(docs.public ? { security: [] } : {}),
  });
}

/** A path parameter no validator describes. */
export function pathParameter(name: string, description?: string): object {
  return { name, in: "path", required: true, schema: { type: "string" }, ...(description ? { description } : {}) };
}
