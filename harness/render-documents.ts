import { Document, HeadingLevel, Packer, Paragraph, Table, TableCell, TableRow, TextRun } from "docx";
import { PDFDocument, type PDFFont, type PDFPage, StandardFonts } from "pdf-lib";
import pptxgen from "pptxgenjs";

// pptxgenjs's types describe its CommonJS build; Node loads its ES build, whose default export is the class itself.
const PptxGenJS = pptxgen as unknown as typeof pptxgen.default;

/**
 * Renders documents to PDF, Word and PowerPoint files with well-kept writer libraries, for the
 * tests' fixtures and the extraction benchmark. Deterministic: the same input gives the same bytes
 * (no creation dates, no random ids).
 */
export interface RenderedDocument {
  readonly title: string;
  readonly sections: readonly { readonly heading?: string; readonly paragraphs: readonly string[] }[];
  /** Rows of cells, rendered after the sections. */
  readonly table?: readonly (readonly string[])[];
}

export interface PdfLayout {
  /** Two columns of text a page instead of one. */
  readonly twoColumn?: boolean;
  /** A line at the top of every page (a running header), and "Page N" at the bottom. */
  readonly runningHeader?: string;
}

const PAGE = { width: 612, height: 792, margin: 72 };
const BODY = 11;
const LEADING = 14;

/**
 * The standard PDF fonts encode WinAnsi only: other characters are spelled with their base letters
 * where Unicode decomposes them (é → e) and dropped otherwise.
 */
export function winAnsi(text: string): string {
  return text
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^\x20-\x7e\u00a0-\u00ff\n]/g, " ");
}

function wrap(text: string, font: PDFFont, size: number, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of winAnsi(text).split(/\s+/).filter(Boolean)) {
    const candidate = line ? `${line} ${word}` : word;
    if (line && font.widthOfTextAtSize(candidate, size) > width) {
      lines.push(line);
      line = word;
    } else line = candidate;
  }
  if (line) lines.push(line);
  return lines;
}

export async function renderPdf(doc: RenderedDocument, layout: PdfLayout = {}): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  pdf.setCreationDate(new Date(0));
  pdf.setModificationDate(new Date(0));
  pdf.setProducer("pgrag harness");
  pdf.setCreator("pgrag harness");
  const regular = await pdf.embedFont(StandardFonts.Helvetica);
  const bold = await pdf.embedFont(StandardFonts.HelveticaBold);
  const columns = layout.twoColumn ? 2 : 1;
  const gutter = 24;
  const columnWidth = (PAGE.width - 2 * PAGE.margin - (columns - 1) * gutter) / columns;
  const top = PAGE.height - PAGE.margin;
  let page: PDFPage | undefined;
  let column = 0;
  let y = 0;
  const newPage = () => {
    page = pdf.addPage([PAGE.width, PAGE.height]);
    const number = pdf.getPageCount();
    if (layout.runningHeader) {
      page.drawText(winAnsi(layout.runningHeader), { x: PAGE.margin, y: PAGE.height - 40, size: 8, font: regular });
      page.drawText(`Page ${number}`, { x: PAGE.width / 2 - 15, y: 30, size: 8, font: regular });
    }
    column = 0;
    y = top;
  };
  const line = (text: string, font: PDFFont, size: number, leading: number) => {
    if (!page || y - leading < PAGE.margin) {
      if (page && column + 1 < columns) {
        column++;
        y = top;
      } else newPage();
    }
    y -= leading;
    page?.drawText(text, { x: PAGE.margin + column * (columnWidth + gutter), y, size, font });
  };
  const gap = () => {
    y -= LEADING / 2;
  };
  for (const text of wrap(doc.title, bold, 18, columnWidth)) line(text, bold, 18, 24);
  gap();
  for (const section of doc.sections) {
    if (section.heading) {
      gap();
      for (const text of wrap(section.heading, bold, 14, columnWidth)) line(text, bold, 14, 18);
    }
    for (const paragraph of section.paragraphs) {
      for (const text of wrap(paragraph, regular, BODY, columnWidth)) line(text, regular, BODY, LEADING);
      gap();
    }
  }
  for (const row of doc.table ?? []) {
    line("", regular, BODY, LEADING);
    const cellWidth = columnWidth / row.length;
    row.forEach((cell, i) => {
      page?.drawText(winAnsi(cell), {
        x: PAGE.margin + column * (columnWidth + gutter) + i * cellWidth,
        y,
        size: BODY,
        font: regular,
      });
    });
  }
  return pdf.save({ useObjectStreams: false });
}

export async function renderDocx(doc: RenderedDocument): Promise<Uint8Array> {
  const children: (Paragraph | Table)[] = [new Paragraph({ text: doc.title, heading: HeadingLevel.TITLE })];
  for (const section of doc.sections) {
    if (section.heading) children.push(new Paragraph({ text: section.heading, heading: HeadingLevel.HEADING_1 }));
    for (const paragraph of section.paragraphs) children.push(new Paragraph({ children: [new TextRun(paragraph)] }));
  }
  if (doc.table) {
    children.push(
      new Table({
        rows: doc.table.map(
          (row) => new TableRow({ children: row.map((cell) => new TableCell({ children: [new Paragraph(cell)] })) }),
        ),
      }),
    );
  }
  const file = new Document({ creator: "pgrag harness", sections: [{ children }] });
  return new Uint8Array(await Packer.toBuffer(file));
}

/** One slide a section: its heading as the slide's title, its paragraphs as text, its last paragraph as speaker notes. */
export async function renderPptx(doc: RenderedDocument): Promise<Uint8Array> {
  const deck = new PptxGenJS();
  deck.defineSlideMaster({
    title: "TITLED",
    objects: [{ placeholder: { options: { name: "title", type: "title", x: 0.5, y: 0.3, w: 9, h: 1 }, text: "" } }],
  });
  for (const section of doc.sections) {
    const slide = deck.addSlide({ masterName: "TITLED" });
    slide.addText(section.heading ?? doc.title, { placeholder: "title" });
    const [notes, ...body] = [...section.paragraphs].reverse();
    slide.addText(
      body.reverse().map((text) => ({ text, options: { breakLine: true } })),
      { x: 0.5, y: 1.5, w: 9, h: 3.5 },
    );
    if (notes) slide.addNotes(notes);
  }
  if (doc.table) {
    const slide = deck.addSlide({ masterName: "TITLED" });
    slide.addText("Table", { placeholder: "title" });
    slide.addTable(
      doc.table.map((row) => row.map((text) => ({ text }))),
      { x: 0.5, y: 1.5, w: 9 },
    );
  }
  return new Uint8Array((await deck.write({ outputType: "uint8array" })) as Uint8Array);
}
