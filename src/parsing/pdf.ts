import { getDocumentProxy } from "unpdf";
import { type ParseLimits, ParseRefusal, type ParseOutcome } from "./parsed-document.ts";
import { PagedMarkdown } from "./paged-markdown.ts";

/** One positioned run of text, as pdf.js reports it. */
interface TextItem {
  readonly str: string;
  readonly transform: readonly number[];
  readonly width: number;
  readonly hasEOL: boolean;
}

/** A line of a page: its text (cells of a table row joined by ` | `), position and font size. */
interface Line {
  readonly text: string;
  readonly y: number;
  readonly size: number;
}

/** A page-top or page-bottom line repeated on this share of the pages (and on three at least) is a running header or footer. */
const RUNNING_SHARE = 0.5;
/** How many lines at each end of a page may be running headers or footers. */
const RUNNING_LINES = 2;
/** A line this much larger than the body text is a heading. */
const HEADING_SCALE = 1.15;
/** A vertical gap over this many line heights ends a paragraph. */
const PARAGRAPH_GAP = 1.6;
/** A horizontal gap over this many font sizes separates a table row's cells. */
const CELL_GAP = 1.5;
/** Fewer letters or digits than this per page on average: no text layer (a scan). */
const MIN_CHARACTERS_PER_PAGE = 10;

/**
 * A PDF's text page by page, in its content order (which is reading order for the single- and
 * multi-column layouts producers write): lines rebuilt from pdf.js's positioned runs, headings
 * recovered from font size (lines clearly larger than the body text), running headers and footers
 * (the same line, page numbers aside, at the top or bottom of most pages) removed, words hyphenated
 * across lines joined, table rows kept as `cell | cell` lines.
 */
export async function parsePdf(bytes: Uint8Array, limits: ParseLimits): Promise<ParseOutcome> {
  const pdf = await openPdf(bytes);
  try {
    if (pdf.numPages > limits.maxPages) {
      throw new ParseRefusal(
        `the PDF has ${pdf.numPages} pages, over the limit of ${limits.maxPages} (PGRAG_PARSE_MAX_PAGES)`,
      );
    }
    const pages: Line[][] = [];
    for (let number = 1; number <= pdf.numPages; number++) {
      const page = await pdf.getPage(number);
      const content = await page.getTextContent();
      pages.push(linesOf(content.items.flatMap((item) => ("str" in item ? [item] : []))));
      page.cleanup();
    }
    const characters = pages.flat().reduce((n, line) => n + line.text.replace(/[^\p{L}\p{N}]/gu, "").length, 0);
    if (characters < MIN_CHARACTERS_PER_PAGE * pages.length) {
      return {
        kind: "needs_ocr",
        reason: `the PDF has no text layer (${characters} characters on ${pages.length} pages; a scan?): it needs OCR`,
      };
    }
    return { kind: "parsed", ...toMarkdown(withoutRunningLines(pages), limits.maxTextBytes) };
  } finally {
    await pdf.loadingTask.destroy();
  }
}

type PdfDocument = Awaited<ReturnType<typeof getDocumentProxy>>;

/** Opens a PDF (its cross-reference table and catalogue), refusing an encrypted or unreadable one. */
export async function openPdf(bytes: Uint8Array): Promise<PdfDocument> {
  try {
    // A copy: pdf.js takes ownership of the buffer it is given.
    return await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0, stopAtErrors: false });
  } catch (error) {
    if ((error as Error).name === "PasswordException") {
      throw new ParseRefusal("the PDF is encrypted with a password: upload it unprotected");
    }
    throw new ParseRefusal(`the file is not a readable PDF (${(error as Error).message})`);
  }
}

function fontSize(item: TextItem): number {
  const [a = 0, b = 0, c = 0, d = 0] = item.transform;
  return Math.max(Math.hypot(a, b), Math.hypot(c, d)) || 1;
}

/** Runs → lines: a new line when the baseline moves by more than a third of the font size. */
function linesOf(items: readonly TextItem[]): Line[] {
  const lines: Line[] = [];
  let text = "";
  let y = Number.NaN;
  let size = 0;
  let end = Number.NaN;
  const flush = () => {
    const line = text
      .replace(/\s+/g, " ")
      .replace(/( \| )+/g, " | ")
      .replace(/^ \| | \| $/g, "")
      .trim();
    if (line !== "") lines.push({ text: line, y, size });
    text = "";
    y = Number.NaN;
  };
  for (const item of items) {
    const itemSize = fontSize(item);
    const [, , , , x = 0, itemY = 0] = item.transform;
    if (item.str.trim() === "" && !Number.isNaN(y)) {
      // pdf.js spans a gap between runs with a space item: a wide one separates a table row's cells.
      text += x + item.width - end > CELL_GAP * itemSize ? " | " : " ";
      end = x + item.width;
    } else if (item.str !== "") {
      if (!Number.isNaN(y) && Math.abs(itemY - y) > itemSize / 3) flush();
      if (Number.isNaN(y)) {
        y = itemY;
        size = itemSize;
      } else {
        const gap = x - end;
        if (gap > CELL_GAP * itemSize) text += " | ";
        else if (gap > itemSize * 0.15 && !text.endsWith(" ") && !item.str.startsWith(" ")) text += " ";
      }
      text += item.str;
      size = Math.max(size, itemSize);
      end = x + item.width;
    }
    if (item.hasEOL) flush();
  }
  flush();
  return lines;
}

/** Digits aside, so "Page 3" and "Page 4" are the same running line. */
function runningKey(line: Line): string {
  return `${Math.round(line.y)}:${line.text.toLowerCase().replace(/\d+/g, "#")}`;
}

function withoutRunningLines(pages: readonly Line[][]): Line[][] {
  if (pages.length < 3) return pages.map((lines) => [...lines]);
  const edges = (lines: readonly Line[]) => [...lines.slice(0, RUNNING_LINES), ...lines.slice(-RUNNING_LINES)];
  const counts = new Map<string, number>();
  for (const lines of pages) {
    for (const key of new Set(edges(lines).map(runningKey))) counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const least = Math.max(3, RUNNING_SHARE * pages.length);
  const running = new Set([...counts].filter(([, n]) => n >= least).map(([key]) => key));
  return pages.map((lines) => {
    const edge = new Set(edges(lines));
    return lines.filter((line) => !(edge.has(line) && running.has(runningKey(line))));
  });
}

/** The body text's size: the size most characters are set in. */
function bodySize(pages: readonly Line[][]): number {
  const bySize = new Map<number, number>();
  for (const line of pages.flat()) {
    const size = Math.round(line.size * 2) / 2;
    bySize.set(size, (bySize.get(size) ?? 0) + line.text.length);
  }
  return [...bySize].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
}

function toMarkdown(pages: readonly Line[][], maxTextBytes: number) {
  const body = bodySize(pages);
  const isHeading = (line: Line) => line.size >= body * HEADING_SCALE && line.text.length <= 200;
  // Heading levels by size: the largest heading size is level 1, and at most three levels.
  const headingSizes = [
    ...new Set(
      pages
        .flat()
        .filter(isHeading)
        .map((l) => Math.round(l.size * 2) / 2),
    ),
  ].sort((a, b) => b - a);
  const levelOf = (line: Line) => Math.min(3, headingSizes.indexOf(Math.round(line.size * 2) / 2) + 1);
  const out = new PagedMarkdown(maxTextBytes);
  for (const lines of pages) {
    out.startPage();
    let paragraph = "";
    let heading: Line | undefined;
    let headingText = "";
    let previous: Line | undefined;
    const endParagraph = () => {
      out.paragraph(paragraph);
      paragraph = "";
    };
    const endHeading = () => {
      if (heading) out.heading(levelOf(heading), headingText);
      heading = undefined;
      headingText = "";
    };
    for (const line of lines) {
      if (isHeading(line)) {
        endParagraph();
        // A heading set on several lines is one heading.
        if (heading && Math.abs(heading.size - line.size) < 0.5) headingText += ` ${line.text}`;
        else {
          endHeading();
          heading = line;
          headingText = line.text;
        }
      } else {
        endHeading();
        const gap = previous ? Math.abs(previous.y - line.y) : 0;
        const tableRow = line.text.includes(" | ");
        if (paragraph !== "" && (gap > PARAGRAPH_GAP * line.size || tableRow !== paragraph.includes(" | "))) {
          endParagraph();
        }
        paragraph = joinLine(paragraph, line.text, tableRow);
      }
      previous = line;
    }
    endHeading();
    endParagraph();
  }
  return out.finish();
}

/** A word hyphenated at the end of a line is joined with its rest; a table row stays a line of its own. */
function joinLine(paragraph: string, line: string, tableRow: boolean): string {
  if (paragraph === "") return line;
  if (tableRow) return `${paragraph}\n${line}`;
  if (/\p{L}-$/u.test(paragraph) && /^\p{Ll}/u.test(line)) return paragraph.slice(0, -1) + line;
  return `${paragraph} ${line}`;
}
