import { describe, expect, it } from "vitest";
import { chunkText, parseHeading } from "../../src/text/chunking.ts";
import { estimateTokens } from "../../src/text/token-estimate.ts";
import { readScifactCorpus } from "../../src/evaluation/datasets.ts";

const options = { maxTokens: 60, overlapTokens: 12, minTokens: 10 };

describe("chunkText", () => {
  it("keeps every chunk an exact slice of the text, within budget, covering all of it", async () => {
    const docs = await readScifactCorpus(200);
    for (const doc of docs) {
      const text = `# ${doc.title}\n\n${doc.text}`;
      const chunks = chunkText(text, options);
      expect(chunks.length).toBeGreaterThan(0);
      for (const chunk of chunks) {
        expect(chunk.content).toBe(text.slice(chunk.charStart, chunk.charEnd));
        expect(chunk.tokenCount).toBeLessThanOrEqual(options.maxTokens);
        expect(chunk.headingPath).toEqual([doc.title.trim()]);
      }
      // Every word of the abstract lands in some chunk.
      const covered = new Set(chunks.flatMap((c) => c.content.split(/\s+/)));
      for (const word of doc.text.split(/\s+/).filter(Boolean)) expect(covered.has(word)).toBe(true);
    }
  });

  it("overlaps consecutive chunks cut for budget by whole sentences, at most the overlap", async () => {
    const roomy = { maxTokens: 120, overlapTokens: 40, minTokens: 10 };
    let overlapping = 0;
    for (const doc of await readScifactCorpus(200)) {
      const chunks = chunkText(doc.text, roomy);
      for (let i = 1; i < chunks.length; i++) {
        const previous = chunks[i - 1];
        const chunk = chunks[i];
        if (!previous || !chunk || chunk.charStart >= previous.charEnd) continue;
        overlapping++;
        expect(estimateTokens(doc.text.slice(chunk.charStart, previous.charEnd))).toBeLessThanOrEqual(
          roomy.overlapTokens,
        );
      }
    }
    expect(overlapping).toBeGreaterThan(20);
  });

  it("follows Markdown sections and records the heading path", () => {
    const intro = "Intro sentence about vectors. ".repeat(5).trim();
    const text = `# Guide\n\n${intro}\n\n## Install\n\nRun the script as root. It installs PostgreSQL and PgBouncer and builds pgvector for the server.\n\n## Use\n\n\`\`\`sh\n# not a heading\nnpm start\n\`\`\`\n`;
    const chunks = chunkText(text, { maxTokens: 200, overlapTokens: 0, minTokens: 10 });
    expect(chunks.map((c) => c.headingPath)).toEqual([["Guide"], ["Guide", "Install"], ["Guide", "Use"]]);
    expect(chunks[0]?.content.startsWith("# Guide")).toBe(true);
    expect(chunks[2]?.content).toContain("# not a heading");
  });

  it("splits a single sentence longer than the budget at words", () => {
    const text = Array.from({ length: 500 }, (_, i) => `word${i}`).join(" ");
    const chunks = chunkText(text, { maxTokens: 50, overlapTokens: 5, minTokens: 5 });
    expect(chunks.length).toBeGreaterThan(10);
    for (const chunk of chunks) expect(chunk.tokenCount).toBeLessThanOrEqual(50);
  });

  it("returns nothing for blank text", () => {
    expect(chunkText("  \n\n \n")).toEqual([]);
  });
});

describe("chunkText on hostile text", () => {
  it("keeps text with no white space within the budget, as exact slices", () => {
    const text = `${"x".repeat(20_000)}😀${"y".repeat(5_000)}`;
    const chunks = chunkText(text, { maxTokens: 64, overlapTokens: 0, minTokens: 8 });
    expect(chunks.length).toBeGreaterThan(10);
    for (const chunk of chunks) {
      expect(chunk.tokenCount).toBeLessThanOrEqual(64);
      expect(chunk.content).toBe(text.slice(chunk.charStart, chunk.charEnd));
      expect(chunk.content).not.toMatch(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/); // no split surrogate pair
    }
    expect(chunks.map((c) => c.content).join("")).toBe(text);
  });

  it("cuts a long punctuation run into budgeted chunks", () => {
    const text = `a${"!".repeat(40_000)}a`;
    const chunks = chunkText(text, { maxTokens: 384, overlapTokens: 48, minTokens: 64 });
    for (const chunk of chunks) expect(chunk.tokenCount).toBeLessThanOrEqual(384);
    expect(chunks[0]?.charStart).toBe(0);
    expect(chunks.at(-1)?.charEnd).toBe(text.length);
  });
});

describe("parseHeading", () => {
  it("reads ATX headings as the old pattern did, and refuses what is not one", () => {
    expect(parseHeading("## Install ##")).toEqual({ level: 2, text: "Install" });
    expect(parseHeading("#\tTabbed")).toEqual({ level: 1, text: "Tabbed" });
    expect(parseHeading(`# a${" ".repeat(60_000)}b`)).toEqual({ level: 1, text: `a${" ".repeat(60_000)}b` });
    expect(parseHeading("####### seven")).toBeNull();
    expect(parseHeading("#no-space")).toBeNull();
    expect(parseHeading("# ")).toBeNull();
    expect(parseHeading("plain")).toBeNull();
  });
});
