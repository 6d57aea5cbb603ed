import { PDFDocument } from "pdf-lib";
import { beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../../src/app.ts";
import { renderDocx, renderPdf, renderPptx } from "../../../harness/render-documents.ts";
import { waitFor } from "../../../harness/wait-for.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { encryptedPdf, zipBombDocx } from "../../../harness/hostile-files.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

interface Location {
  file_name: string | null;
  page_start: number | null;
  page_end: number | null;
  page_unit: string | null;
  label: string;
}
interface Hit {
  external_id: string;
  content: string;
  location: Location;
}
interface ErrorJson {
  error: { code: string; message: string };
}

let app: App;
beforeAll(async () => {
  app = await startTestApp({}, { workers: true });
});

/** A raw upload with its file name, as `curl --data-binary @report.pdf -H 'Content-Disposition: …'` sends it. */
async function putFile(key: string, path: string, bytes: Uint8Array, contentType: string, fileName?: string) {
  const headers: Record<string, string> = { Authorization: `Bearer ${key}`, "Content-Type": contentType };
  if (fileName) headers["Content-Disposition"] = `attachment; filename="${fileName}"`;
  const response = await app.http.request(path, { method: "PUT", headers, body: Buffer.from(bytes) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> & ErrorJson };
}

const fillerPage = Array.from({ length: 40 }, (_, i) => `Background sentence ${i} about photovoltaic modules.`);
const report = {
  title: "Solar report",
  sections: [
    { heading: "Background", paragraphs: fillerPage },
    {
      heading: "Findings",
      paragraphs: ["The trial ran for a year.", "Perovskite tandem cells reached record efficiency in Seville."],
    },
  ],
};
const notes = {
  title: "Meeting notes",
  sections: [
    { heading: "Attendees", paragraphs: [`Present: ${"a member of the energy team, ".repeat(20)}`] },
    { heading: "Findings", paragraphs: ["We discussed perovskite tandem cells at length."] },
  ],
};
const deck = {
  title: "Quarterly review",
  sections: [
    {
      heading: "Agenda",
      paragraphs: [`Welcome and goals: ${"the year in review, the plans for the next. ".repeat(8)}`, "Say hello."],
    },
    { heading: "Wind farms", paragraphs: ["Offshore turbines doubled their output", "Mention the gearbox recall."] },
  ],
};

async function search(key: string, collection: string, query: string) {
  const response = await api<{ results: Hit[] }>(app, "POST", "/v1/search", {
    key,
    json: { collection, query, mode: "bm25", k: 3 },
  });
  return response.body.results;
}

describe("files as documents", () => {
  it("takes PDF, Word and PowerPoint files, raw or multipart, and cites them by page and slide", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "files");
    const pdf = await renderPdf(report);
    // Declared generic: the type is read from the bytes, the name from Content-Disposition.
    const put = await putFile(
      key,
      "/v1/collections/files/documents/report",
      pdf,
      "application/octet-stream",
      "report.pdf",
    );
    expect(put.status).toBe(202);
    const form = new FormData();
    form.append("file", new File([Buffer.from(await renderDocx(notes))], "notes.docx"));
    form.append("file", new File([Buffer.from(await renderPptx(deck))], "deck.pptx", { type: "text/plain" })); // a wrong type
    const multipart = await app.http.request("/v1/collections/files/documents", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}` },
      body: form,
    });
    expect(multipart.status).toBe(202);
    const { documents, token } = await waitForDocuments(app, key, "files", ["report", "notes.docx", "deck.pptx"]);
    expect(
      ["report", "notes.docx", "deck.pptx"].map((id) => {
        const d = documents.get(id) as unknown as Record<string, unknown>;
        return [d.content_type, d.file_name, d.title];
      }),
    ).toEqual([
      ["application/pdf", "report.pdf", "report.pdf"],
      ["application/vnd.openxmlformats-officedocument.wordprocessingml.document", "notes.docx", "notes.docx"],
      ["application/vnd.openxmlformats-officedocument.presentationml.presentation", "deck.pptx", "deck.pptx"],
    ]);

    const [pdfHit] = (await search(key, "files", "perovskite tandem")).filter((h) => h.external_id === "report");
    expect(pdfHit?.location).toMatchObject({ file_name: "report.pdf", page_start: 2, page_end: 2, page_unit: "page" });
    expect(pdfHit?.location.label).toBe("report.pdf, p. 2");
    const [slideHit] = await search(key, "files", "offshore turbines gearbox");
    expect(slideHit).toMatchObject({
      external_id: "deck.pptx",
      location: { page_start: 2, label: "deck.pptx, slide 2" },
    });
    expect(slideHit?.content).toContain("Speaker notes: Mention the gearbox recall.");
    const [wordHit] = (await search(key, "files", "perovskite tandem")).filter((h) => h.external_id === "notes.docx");
    expect(wordHit?.location.page_start).toBeNull();
    expect(wordHit?.location.label).toMatch(/^notes\.docx › (.+ › )?Findings$/);

    // Citations carry the page through /v1/chat and the OpenAI facade.
    const chat = await api<{ citations: { external_id: string; location: Location }[] }>(app, "POST", "/v1/chat", {
      key,
      token,
      json: {
        collection: "files",
        question: "Where did perovskite tandem cells reach record efficiency?",
        stream: false,
      },
    });
    expect(chat.status).toBe(200);
    expect(chat.body.citations.map((c) => c.location.label)).toContain("report.pdf, p. 2");
    const openai = await api<{ citations: { location: Location }[] }>(app, "POST", "/v1/chat/completions", {
      key,
      token,
      json: {
        model: "rag:files",
        messages: [{ role: "user", content: "Where did perovskite tandem cells reach record efficiency?" }],
      },
    });
    expect(openai.body.citations.map((c) => c.location.label)).toContain("report.pdf, p. 2");

    // The original comes back byte for byte, with its type and name.
    const original = await app.http.request("/v1/collections/files/documents/report/original", {
      headers: { Authorization: `Bearer ${key}` },
    });
    expect(original.status).toBe(200);
    expect(original.headers.get("Content-Type")).toBe("application/pdf");
    expect(original.headers.get("Content-Disposition")).toContain('filename="report.pdf"');
    expect(Buffer.from(await original.arrayBuffer()).equals(Buffer.from(pdf))).toBe(true);
  });

  it("parses a file again on request, one document or a whole collection; text has nothing to reparse", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "again");
    await putFile(key, "/v1/collections/again/documents/r", await renderPdf(report), "application/pdf", "r.pdf");
    await api(app, "PUT", "/v1/collections/again/documents/t", {
      key,
      body: "# Plain\n\ntext",
      contentType: "text/markdown",
    });
    const before = (await waitForDocuments(app, key, "again", ["r", "t"])).documents.get("r");
    const one = await api<{ documents: number }>(app, "POST", "/v1/collections/again/documents/r/reparse", { key });
    expect(one).toMatchObject({ status: 202, body: { documents: 1 } });
    const after = await waitForDocuments(app, key, "again", ["r"]);
    expect(after.documents.get("r")?.version).toBe((before?.version ?? 0) + 1);
    const text = await api<ErrorJson>(app, "POST", "/v1/collections/again/documents/t/reparse", { key });
    expect(text.status).toBe(409);
    expect(text.body.error.message).toMatch(/sent as text/);
    const all = await api<{ documents: number }>(app, "POST", "/v1/collections/again/reparse", { key });
    expect(all).toMatchObject({ status: 202, body: { documents: 1 } });
    // A document sent as text downloads as that text.
    const original = await app.http.request("/v1/collections/again/documents/t/original", {
      headers: { Authorization: `Bearer ${key}` },
    });
    expect(await original.text()).toBe("# Plain\n\ntext");
  });

  it("says why a file cannot be read: encrypted, scanned, a zip bomb, a wrong or unknown type", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "bad");
    const path = (id: string) => `/v1/collections/bad/documents/${id}`;
    const encrypted = await putFile(key, path("e"), encryptedPdf(), "application/pdf");
    expect(encrypted.status).toBe(422);
    expect(encrypted.body.error.message).toMatch(/encrypted with a password/);
    const bomb = zipBombDocx(20_000_000);
    const bombed = await putFile(key, path("b"), bomb, "application/octet-stream", "bomb.docx");
    expect(bombed.status).toBe(422);
    expect(bombed.body.error.message).toMatch(/zip bomb/);
    const notPdf = await putFile(key, path("n"), new TextEncoder().encode("hello"), "application/pdf");
    expect(notPdf.status).toBe(415);
    expect(notPdf.body.error.message).toMatch(/declared "application\/pdf" but its bytes are not such a file/);
    const image = await putFile(key, path("i"), new Uint8Array([0x89, 0x50, 0x4e, 0x47]), "image/png");
    expect(image.status).toBe(415);
    expect(image.body.error.message).toMatch(/send PDF, Word \(\.docx\), PowerPoint/);

    const scan = await PDFDocument.create();
    scan.addPage([612, 792]).drawRectangle({ x: 50, y: 50, width: 500, height: 700 });
    expect((await putFile(key, path("scan"), await scan.save(), "application/pdf", "scan.pdf")).status).toBe(202);
    const { documents } = await waitForDocuments(app, key, "bad", ["scan"], ["needs_ocr"]);
    expect(documents.get("scan")?.error).toMatch(/no text layer.*needs OCR.*PGRAG_PARSER_URL/);
    const listed = await api<{ documents: unknown[] }>(app, "GET", "/v1/collections/bad/documents?status=needs_ocr", {
      key,
    });
    expect(listed.body.documents).toHaveLength(1);
  });

  it("counts a file's bytes toward the tenant's stored-bytes quota", async () => {
    const small = await startTestApp({ PGRAG_QUOTA_STORED_BYTES: "10000" });
    const { key } = await newTenantKey(small);
    await api(small, "POST", "/v1/collections", { key, json: { name: "q" } });
    const pdf = await renderPdf({ title: "Big", sections: [{ paragraphs: Array(300).fill("Quota filler text.") }] });
    expect(pdf.byteLength).toBeGreaterThan(10_000);
    const response = await small.http.request("/v1/collections/q/documents/big", {
      method: "PUT",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/pdf" },
      body: Buffer.from(pdf),
    });
    expect(response.status).toBe(413);
    expect(((await response.json()) as ErrorJson).error.message).toMatch(/quota "stored_bytes"/);
  });

  it("imports files as base64 lines beside text lines; a line of an unknown type fails alone", async () => {
    const { key } = await newTenantKey(app);
    await createCollection(app, key, "imported");
    const pdf = await renderPdf(report);
    const lines = [
      { external_id: "plain", content: "Plain text about offshore wind." },
      { external_id: "report", file_name: "report.pdf", content_base64: Buffer.from(pdf).toString("base64") },
      {
        external_id: "deck",
        file_name: "deck.pptx",
        content_base64: Buffer.from(await renderPptx(deck)).toString("base64"),
      },
      { external_id: "noise", file_name: "noise.bin", content_base64: Buffer.from("just bytes").toString("base64") },
    ];
    const started = await api<{ import: { id: string } }>(app, "POST", "/v1/collections/imported/imports", {
      key,
      body: `${lines.map((line) => JSON.stringify(line)).join("\n")}\n`,
      contentType: "application/x-ndjson",
    });
    expect(started.status).toBe(202);
    const done = await waitFor("the import", async () => {
      const { body } = await api<{ import: Record<string, unknown> & { status: string } }>(
        app,
        "GET",
        `/v1/collections/imported/imports/${started.body.import.id}`,
        { key },
      );
      return ["completed", "failed"].includes(body.import.status) ? body.import : undefined;
    });
    expect(done).toMatchObject({
      status: "completed",
      progress: { documents_staged: 3, documents_failed: 1 },
      failures: [
        { line: 4, external_id: "noise", error: expect.stringMatching(/neither a PDF, a Word nor a PowerPoint/) },
      ],
    });
    const [hit] = await search(key, "imported", "perovskite tandem");
    expect(hit).toMatchObject({ external_id: "report", location: { label: "report.pdf, p. 2" } });
    const original = await app.http.request("/v1/collections/imported/documents/report/original", {
      headers: { Authorization: `Bearer ${key}` },
    });
    expect(Buffer.from(await original.arrayBuffer()).equals(Buffer.from(pdf))).toBe(true);
    const listed = await api<{ documents: { external_id: string; content_type: string; title: string }[] }>(
      app,
      "GET",
      "/v1/collections/imported/documents",
      { key },
    );
    expect(listed.body.documents.map((d) => [d.external_id, d.content_type, d.title])).toEqual([
      ["deck", "application/vnd.openxmlformats-officedocument.presentationml.presentation", "deck.pptx"],
      ["plain", "text/plain", null],
      ["report", "application/pdf", "report.pdf"],
    ]);
  });
});
