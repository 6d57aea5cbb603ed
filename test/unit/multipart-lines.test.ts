import { describe, expect, it } from "vitest";
import { multipartLines } from "../../src/api/multipart-lines.ts";

/** A body and its content type as a browser or the openai package would send the form. */
async function encoded(form: FormData) {
  const request = new Request("http://x/", { method: "POST", body: form });
  return { body: request.body as ReadableStream<Uint8Array>, type: request.headers.get("Content-Type") ?? "" };
}

async function events(form: FormData, limits = { maxBytes: 1 << 20, maxLineBytes: 1024, what: "TEST" }) {
  const { body, type } = await encoded(form);
  const out = [];
  for await (const event of multipartLines(body, type, limits)) out.push(event);
  return out;
}

describe("multipart lines", () => {
  it("names a line that is not UTF-8 by its number in the file, not in the form", async () => {
    const form = new FormData();
    form.append("purpose", "batch");
    form.append("file", new File([new Uint8Array([0x7b, 0x7d, 0x0a, 0xff, 0xfe, 0x0a])], "in.jsonl"));
    await expect(events(form)).rejects.toMatchObject({
      code: "invalid_request",
      message: 'line 2 of "in.jsonl" is not valid UTF-8',
    });
  });

  it("reads text fields whole and a file line by line, in the order they were sent", async () => {
    const form = new FormData();
    form.append("file", new File(['{"a":1}\n{"b":2}\r\n{"c":3}'], "in.jsonl"));
    form.append("purpose", "batch");
    expect(await events(form)).toEqual([
      { kind: "line", filename: "in.jsonl", number: 1, text: '{"a":1}' },
      { kind: "line", filename: "in.jsonl", number: 2, text: '{"b":2}' },
      { kind: "line", filename: "in.jsonl", number: 3, text: '{"c":3}' },
      { kind: "field", name: "purpose", value: "batch" },
    ]);
  });

  it("refuses a line longer than its limit with its number in the file, and a body without a boundary", async () => {
    const form = new FormData();
    form.append("purpose", "batch");
    form.append("file", new File([`ok\n${"x".repeat(2000)}\n`], "in.jsonl"));
    await expect(events(form)).rejects.toMatchObject({
      code: "payload_too_large",
      message: expect.stringMatching(/^line 2 of "in\.jsonl" is longer than 1024 bytes/),
    });
    const { body } = await encoded(new FormData());
    await expect(
      (async () => {
        for await (const event of multipartLines(body, "multipart/form-data", {
          maxBytes: 10,
          maxLineBytes: 10,
          what: "T",
        }))
          void event;
      })(),
    ).rejects.toMatchObject({ code: "invalid_request" });
  });
});
