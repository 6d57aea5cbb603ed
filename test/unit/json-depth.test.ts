import { describe, expect, it } from "vitest";
import { jsonDepthWithin, MAX_JSON_DEPTH, refuseDeepJson } from "../../src/text/json-depth.ts";

const nested = (depth: number) => `${"[".repeat(depth)}1${"]".repeat(depth)}`;

describe("JSON nesting depth", () => {
  it("accepts nesting up to the limit and refuses one level more", () => {
    expect(jsonDepthWithin(nested(MAX_JSON_DEPTH))).toBe(true);
    expect(jsonDepthWithin(nested(MAX_JSON_DEPTH + 1))).toBe(false);
    expect(jsonDepthWithin('{"a":{"b":[{"c":1}]}}', 4)).toBe(true);
    expect(jsonDepthWithin('{"a":{"b":[{"c":1}]}}', 3)).toBe(false);
  });

  it("does not count brackets inside strings, escaped quotes included", () => {
    const inString = JSON.stringify({ text: `${"[{".repeat(1000)} \\" \\\\" ${"{".repeat(1000)}` });
    expect(jsonDepthWithin(inString, 1)).toBe(true);
    expect(jsonDepthWithin(JSON.stringify({ a: 'quote " then [[[' }), 1)).toBe(true);
  });

  it("refuses a line nested 200,000 deep with a 400 naming the limit, before parsing it", () => {
    expect(() => refuseDeepJson(nested(200_000), "line 1")).toThrow(
      expect.objectContaining({
        code: "invalid_request",
        message: `line 1 nests objects or arrays more than ${MAX_JSON_DEPTH} levels deep; flatten it`,
      }),
    );
    expect(() => refuseDeepJson('{"a":[1,2]}', "the body")).not.toThrow();
  });
});
