import { zipSync } from "fflate";
import { PDFDocument, StandardFonts } from "pdf-lib";

/**
 * Files made to hurt a parser, for the tests and `bench:hostile`: each must fail alone, with its
 * reason, within its budget. The PDFs that pdf-lib cannot express are written by hand.
 */

/** A PDF of the given objects (numbered from 1; the first is the catalogue), with a correct cross-reference table. */
export function handWrittenPdf(objects: readonly (string | Uint8Array)[], trailer = ""): Uint8Array {
  const parts: Buffer[] = [Buffer.from("%PDF-1.4\n")];
  let length = parts[0]?.length ?? 0;
  const offsets: number[] = [];
  objects.forEach((object, i) => {
    offsets.push(length);
    const part = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), Buffer.from(object), Buffer.from("\nendobj\n")]);
    parts.push(part);
    length += part.length;
  });
  let tail = `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const offset of offsets) tail += `${String(offset).padStart(10, "0")} 00000 n \n`;
  tail += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R ${trailer}>>\nstartxref\n${length}\n%%EOF\n`;
  return new Uint8Array(Buffer.concat([...parts, Buffer.from(tail)]));
}

const PAGES = "<< /Type /Pages /Kids [3 0 R] /Count 1 >>";
const CATALOG = "<< /Type /Catalog /Pages 2 0 R >>";

/**
 * Encrypted with a user password (the standard security handler, revision 2): its /U entry does not
 * match the empty password, so a reader must ask for one (pdf-lib does not encrypt).
 */
export function encryptedPdf(): Uint8Array {
  const hex = (byte: number) => byte.toString(16).padStart(2, "0").repeat(32);
  const id = "0123456789abcdef0123456789abcdef";
  return handWrittenPdf(
    [
      CATALOG,
      PAGES,
      "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
      `<< /Filter /Standard /V 1 /R 2 /O <${hex(0x4f)}> /U <${hex(0x55)}> /P -4 >>`,
    ],
    `/Encrypt 4 0 R /ID [<${id}> <${id}>] `,
  );
}

/** A page whose resources hold an array nested `depth` levels deep. */
export function nestedPdf(depth: number): Uint8Array {
  return handWrittenPdf([
    CATALOG,
    PAGES,
    `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Deep ${"[".repeat(depth)}${"]".repeat(depth)} >> >>`,
  ]);
}

/** One page whose content stream draws `lines` lines of text: a stream of tens of megabytes. */
export function hugeStreamPdf(lines: number): Uint8Array {
  const content = Buffer.from(
    `BT /F1 10 Tf 12 TL 72 720 Td ${"(a line of text in a very long stream) ' ".repeat(lines)}ET`,
  );
  return handWrittenPdf([
    CATALOG,
    PAGES,
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    Buffer.concat([Buffer.from(`<< /Length ${content.length} >>\nstream\n`), content, Buffer.from("\nendstream")]),
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
  ]);
}

/** `pages` pages of one line each. */
export async function manyPagesPdf(pages: number): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  const font = await pdf.embedFont(StandardFonts.Helvetica);
  for (let i = 1; i <= pages; i++)
    pdf.addPage([612, 792]).drawText(`Page body ${i}`, { x: 72, y: 700, size: 11, font });
  return pdf.save();
}

/** A Word file whose document part expands to `bytes` of spaces (a thousand-fold and more). */
export function zipBombDocx(bytes: number): Uint8Array {
  return zipSync({ "word/document.xml": new Uint8Array(bytes).fill(32) }, { level: 9 });
}

/**
 * A Word file whose document part expands to `bytes` while its headers declare 1,000: a zip bomb
 * that lies to the checks that read the archive's directory.
 */
export function lyingZipBombDocx(bytes: number): Uint8Array {
  const zip = Buffer.from(zipBombDocx(bytes));
  zip.writeUInt32LE(1000, 22); // the local header's uncompressed size
  const central = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  zip.writeUInt32LE(1000, central + 24); // the central directory's
  return new Uint8Array(zip);
}
