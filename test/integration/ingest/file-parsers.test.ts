import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { PDFDocument } from "pdf-lib";
import { describe, expect, it } from "vitest";
import { renderPdf } from "../../../harness/render-documents.ts";
import { hugeStreamPdf, manyPagesPdf, nestedPdf } from "../../../harness/hostile-files.ts";
import { api, newTenantKey } from "../../helpers/api.ts";
import { startTestApp } from "../../helpers/app.ts";
import { createCollection, waitForDocuments } from "../../helpers/ingest.ts";

// Each test runs the only app with workers (apps' workers share the queue): the settings under test
// are the ones that parse.

const report = {
  title: "Solar report",
  sections: [{ heading: "Findings", paragraphs: ["Perovskite tandem cells reached record efficiency."] }],
};

describe("parsing files under limits and with an external parser", () => {
  it("fails each hostile file alone, with its reason, while the file beside it becomes ready", async () => {
    const strict = await startTestApp(
      { PGRAG_PARSE_TIMEOUT_MS: "2000", PGRAG_PARSE_MAX_PAGES: "10000", PGRAG_PARSE_MEMORY_MB: "64" },
      { workers: true },
    );
    const { key } = await newTenantKey(strict);
    await createCollection(strict, key, "hostile");
    const form = new FormData();
    form.append("file", new File([Buffer.from(await renderPdf(report))], "good.pdf"));
    form.append("file", new File([Buffer.from(nestedPdf(200_000))], "nested.pdf"));
    form.append("file", new File([Buffer.from(await manyPagesPdf(6_000))], "pages.pdf"));
    form.append("file", new File([Buffer.from(hugeStreamPdf(1_000_000))], "stream.pdf"));
    const upload = await strict.http.request("/v1/collections/hostile/documents", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}` },
      body: form,
    });
    expect(upload.status).toBe(202);
    const files = ["good.pdf", "nested.pdf", "pages.pdf", "stream.pdf"];
    const { documents } = await waitForDocuments(strict, key, "hostile", files, ["ready", "failed"]);
    expect(documents.get("good.pdf")?.status).toBe("ready");
    expect(documents.get("nested.pdf")).toMatchObject({ status: "failed", error: expect.stringMatching(/PDF/) });
    // Over the time budget, or over the heap cap: either way, that file alone, with the reason.
    const overBudget = /took (longer than 2000 ms \(PGRAG_PARSE_TIMEOUT_MS\)|more than 64 MB of memory)/;
    expect(documents.get("pages.pdf")).toMatchObject({ status: "failed", error: expect.stringMatching(overBudget) });
    expect(documents.get("stream.pdf")).toMatchObject({ status: "failed", error: expect.stringMatching(overBudget) });
  });

  it("sends a file without a text layer to the external parser (Tika's API), keeping its pages", async () => {
    const received: { contentType?: string; bytes: number }[] = [];
    const tika = createServer((request, response) => {
      let bytes = 0;
      request.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
      });
      request.on("end", () => {
        received.push({ contentType: request.headers["content-type"], bytes });
        const ok = request.method === "PUT" && request.url === "/tika" && request.headers.accept === "text/html";
        response.writeHead(ok ? 200 : 404, { "Content-Type": "text/html" });
        response.end(
          `<html><body><div class="page"><p>${"A cover page about the programme and its partners. ".repeat(12)}</p></div>` +
            '<div class="page"><h1>Results</h1><p>Hydrogen electrolysers ran at seventy percent load.</p></div></body></html>',
        );
      });
    });
    await new Promise<void>((resolve) => tika.listen(0, "127.0.0.1", resolve));
    try {
      const port = (tika.address() as AddressInfo).port;
      const ocr = await startTestApp({ PGRAG_PARSER_URL: `http://127.0.0.1:${port}` }, { workers: true });
      const { key } = await newTenantKey(ocr);
      await createCollection(ocr, key, "scans");
      const scan = await PDFDocument.create();
      scan.addPage([612, 792]).drawRectangle({ x: 50, y: 50, width: 500, height: 700 });
      const bytes = await scan.save();
      const response = await ocr.http.request("/v1/collections/scans/documents/scan", {
        method: "PUT",
        headers: {
          Authorization: `Bearer ${key}`,
          "Content-Type": "application/pdf",
          "Content-Disposition": 'attachment; filename="scan.pdf"',
        },
        body: Buffer.from(bytes),
      });
      expect(response.status).toBe(202);
      await waitForDocuments(ocr, key, "scans", ["scan"]);
      expect(received).toEqual([{ contentType: "application/pdf", bytes: bytes.byteLength }]);
      const hits = await api<{ results: { location: Record<string, unknown> }[] }>(ocr, "POST", "/v1/search", {
        key,
        json: { collection: "scans", query: "hydrogen electrolysers", mode: "bm25", k: 1 },
      });
      expect(hits.body.results[0]?.location).toMatchObject({ page_start: 2, label: "scan.pdf, p. 2" });
    } finally {
      await new Promise((resolve) => tika.close(resolve));
    }
  });
});
