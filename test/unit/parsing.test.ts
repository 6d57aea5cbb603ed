import { readFileSync } from "node:fs";
import { zipSync } from "fflate";
import { PDFDocument, StandardFonts } from "pdf-lib";
import { describe, expect, it } from "vitest";
import { renderDocx, renderPdf, renderPptx } from "../../harness/render-documents.ts";
import { DOCUMENTS_DIR } from "../../src/evaluation/datasets.ts";
import { identifyFile, parseFile } from "../../src/parsing/parse-file.ts";
import { type ParseLimits, type ParseOutcome, pagesSpanned } from "../../src/parsing/parsed-document.ts";
import { encryptedPdf, lyingZipBombDocx, zipBombDocx } from "../../harness/hostile-files.ts";

const LIMITS: ParseLimits = {
  maxPages: 100,
  maxTextBytes: 1_000_000,
  maxZipEntries: 1_000,
  maxExpandedBytes: 50_000_000,
  maxExpansionRatio: 200,
};

function parsed(outcome: ParseOutcome) {
  if (outcome.kind !== "parsed") throw new Error(`expected a parse, got ${JSON.stringify(outcome)}`);
  return outcome;
}

const REPORT = {
  title: "Annual report",
  sections: [
    { heading: "Revenue", paragraphs: ["Revenue grew in every region.", "The northern region led the growth."] },
    { heading: "Costs", paragraphs: ["Costs fell by a tenth.", "Energy was the largest saving."] },
  ],
  table: [
    ["Region", "Revenue"],
    ["North", "120"],
  ],
};

describe("PDF parsing", () => {
  it("gives text per page in reading order, headings from font size, table rows as cells", async () => {
    const bytes = await renderPdf(REPORT);
    expect(await identifyFile(bytes, LIMITS)).toEqual({ kind: "format", format: "pdf" });
    const { text, pageStarts } = parsed(await parseFile(bytes, "pdf", LIMITS));
    expect(text).toContain("# Annual report");
    expect(text).toContain("## Revenue");
    expect(text).toContain("Revenue grew in every region.");
    expect(text.indexOf("## Costs")).toBeGreaterThan(text.indexOf("northern region"));
    expect(text).toContain("Region | Revenue\nNorth | 120");
    expect(pageStarts).toEqual([0]);
  });

  it("counts pages, keeps two columns in order and removes running headers and page numbers", async () => {
    const paragraphs = Array.from(
      { length: 150 },
      (_, i) => `Paragraph ${i} is about ${String.fromCharCode(97 + (i % 26)).repeat(3 + (i % 5))}.`,
    );
    const bytes = await renderPdf(
      { title: "Long", sections: [{ paragraphs }] },
      { twoColumn: true, runningHeader: "Journal of Examples" },
    );
    const { text, pageStarts } = parsed(await parseFile(bytes, "pdf", LIMITS));
    expect(pageStarts.length).toBeGreaterThan(1);
    expect(text).not.toContain("Journal of Examples");
    expect(text).not.toMatch(/Page \d/);
    const positions = paragraphs.map((p) => text.indexOf(p));
    expect(positions.every((position) => position >= 0)).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    // Each paragraph's page is the page it was drawn on: the last one is on the last page.
    const last = positions[positions.length - 1] as number;
    expect(pagesSpanned(pageStarts, last, last + 10)?.first).toBe(pageStarts.length);
  });

  it("joins a word hyphenated across lines", async () => {
    const pdf = await PDFDocument.create();
    const font = await pdf.embedFont(StandardFonts.Helvetica);
    const page = pdf.addPage([612, 792]);
    page.drawText("The experiment measured the tempera-", { x: 72, y: 700, size: 11, font });
    page.drawText("ture of the water every hour.", { x: 72, y: 686, size: 11, font });
    const { text } = parsed(await parseFile(await pdf.save(), "pdf", LIMITS));
    expect(text).toBe("The experiment measured the temperature of the water every hour.");
  });

  it("marks a PDF without a text layer as needing OCR, with the reason", async () => {
    const pdf = await PDFDocument.create();
    pdf.addPage([612, 792]).drawRectangle({ x: 50, y: 50, width: 500, height: 700 });
    const outcome = await parseFile(await pdf.save(), "pdf", LIMITS);
    expect(outcome).toMatchObject({
      kind: "needs_ocr",
      reason: expect.stringMatching(/no text layer.*needs OCR/),
    });
  });

  it("refuses an encrypted PDF, a PDF over the page limit and a file that is not a PDF", async () => {
    expect(await identifyFile(encryptedPdf(), LIMITS)).toMatchObject({
      kind: "refused",
      reason: expect.stringMatching(/encrypted/),
    });
    const many = await renderPdf({
      title: "Many",
      sections: [{ paragraphs: Array(400).fill("Filler text of a page.") }],
    });
    expect(await parseFile(many, "pdf", { ...LIMITS, maxPages: 2 })).toMatchObject({
      kind: "refused",
      reason: expect.stringMatching(/pages, over the limit of 2 \(PGRAG_PARSE_MAX_PAGES\)/),
    });
    expect(await identifyFile(new TextEncoder().encode("%PDF-1.4 nothing else"), LIMITS)).toMatchObject({
      kind: "refused",
      reason: expect.stringMatching(/not a readable PDF/),
    });
  });
});

describe("Word parsing", () => {
  it("keeps headings, paragraphs and tables, without pages", async () => {
    const bytes = await renderDocx(REPORT);
    expect(await identifyFile(bytes, LIMITS)).toEqual({ kind: "format", format: "docx" });
    const { text, pageStarts } = parsed(await parseFile(bytes, "docx", LIMITS));
    expect(text).toMatch(/^# Revenue$/m);
    expect(text).toContain("The northern region led the growth.");
    expect(text).toContain("Region | Revenue");
    expect(pageStarts).toEqual([]);
  });

  it("refuses a zip bomb from its directory, before expanding it", async () => {
    const bomb = zipBombDocx(20_000_000);
    const outcome = await identifyFile(bomb, LIMITS);
    expect(outcome).toMatchObject({ kind: "refused", reason: expect.stringMatching(/expands \d+-fold.*zip bomb/) });
    const crowded = zipSync(
      Object.fromEntries(Array.from({ length: 1_001 }, (_, i) => [`word/${i}.xml`, new Uint8Array(1)])),
    );
    expect(await identifyFile(crowded, LIMITS)).toMatchObject({
      kind: "refused",
      reason: expect.stringMatching(/more than 1000 entries/),
    });
    // Headers that understate the expansion pass the directory's checks, but nothing inflates past them.
    const liar = lyingZipBombDocx(20_000_000);
    expect(await identifyFile(liar, LIMITS)).toEqual({ kind: "format", format: "docx" });
    expect(await parseFile(liar, "docx", LIMITS)).toMatchObject({ kind: "refused" });
    const other = zipSync({ "hello.txt": new TextEncoder().encode("hello") });
    expect(await identifyFile(other, LIMITS)).toMatchObject({
      kind: "refused",
      reason: expect.stringMatching(/neither a Word/),
    });
  });
});

describe("PowerPoint parsing", () => {
  it("gives each slide as a page: its title as a heading, its text, its tables, its notes marked", async () => {
    const bytes = await renderPptx(REPORT);
    expect(await identifyFile(bytes, LIMITS)).toEqual({ kind: "format", format: "pptx" });
    const { text, pageStarts } = parsed(await parseFile(bytes, "pptx", LIMITS));
    expect(pageStarts).toHaveLength(3);
    const slide = (n: number) => text.slice(pageStarts[n - 1], pageStarts[n] ?? text.length);
    expect(slide(1)).toMatch(
      /^# Revenue\n\nRevenue grew in every region\.\n\nSpeaker notes: The northern region led the growth\.\n*$/,
    );
    expect(slide(2)).toContain("# Costs");
    expect(slide(3)).toContain("Region | Revenue\nNorth | 120");
  });

  it("refuses a DOCTYPE (entity expansion) in a part", async () => {
    const xml = new TextEncoder().encode('<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "a">]><p:presentation/>');
    const file = zipSync({ "ppt/presentation.xml": xml });
    expect(await parseFile(file, "pptx", LIMITS)).toMatchObject({
      kind: "refused",
      reason: expect.stringMatching(/DOCTYPE/),
    });
  });
});

describe("pagesSpanned", () => {
  it("maps offsets to the pages they fall on", () => {
    expect(pagesSpanned([0, 100, 250], 0, 50)).toEqual({ first: 1, last: 1 });
    expect(pagesSpanned([0, 100, 250], 90, 120)).toEqual({ first: 1, last: 2 });
    expect(pagesSpanned([0, 100, 250], 260, 300)).toEqual({ first: 3, last: 3 });
    expect(pagesSpanned([], 0, 10)).toBeNull();
  });
});

describe("real-world files (data/documents)", () => {
  it("reads a typeset specification page by page, with its numbered headings", async () => {
    const bytes = readFileSync(`${DOCUMENTS_DIR}/shared-mime-info-spec.pdf`);
    const { text, pageStarts } = parsed(await parseFile(bytes, "pdf", LIMITS));
    expect(pageStarts).toHaveLength(17);
    expect(text).toMatch(/^# Shared MIME-info Database$/m);
    expect(text).toMatch(/^#+ 1\. Introduction$/m);
    const heading = text.indexOf("2.2. The source XML files");
    expect(pagesSpanned(pageStarts, heading, heading + 10)).toEqual({ first: 4, last: 4 });
    expect(text).toContain("This is version 0.21 of the Shared MIME-info Database specification");
  });

  it("reads a Word file's table as rows between its paragraphs", async () => {
    const bytes = readFileSync(`${DOCUMENTS_DIR}/mammoth-tables.docx`);
    const { text } = parsed(await parseFile(bytes, "docx", LIMITS));
    expect(text).toBe("Above\n\nTop left | Top right\nBottom left | Bottom right\n\nBelow");
  });
});
