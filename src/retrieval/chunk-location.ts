import { pageUnitOf } from "../parsing/formats.ts";

/** Where a chunk came from: its file, the pages (or slides) it spans, and the headings above it. */
export interface ChunkLocation {
  readonly fileName: string | null;
  readonly pageStart: number | null;
  readonly pageEnd: number | null;
  readonly pageUnit: "page" | "slide" | null;
  readonly headingPath: readonly string[];
}

/** What a location is made of, selected from chunks `c` joined with their documents `d`. */
export const LOCATION_COLUMNS = [
  "d.file_name",
  "d.content_type",
  "c.page_start",
  "c.page_end",
  "c.heading_path",
] as const;

export function chunkLocation(row: {
  file_name: string | null;
  content_type: string;
  page_start: number | null;
  page_end: number | null;
  heading_path: string[];
}): ChunkLocation {
  return {
    fileName: row.file_name,
    pageStart: row.page_start,
    pageEnd: row.page_end,
    pageUnit: row.page_start === null ? null : pageUnitOf(row.content_type),
    headingPath: row.heading_path,
  };
}

/**
 * How a citation names the place: "report.pdf, p. 12", "report.pdf, pp. 12–13", "deck.pptx, slide 4" (or "slides 4–5"),
 * or the heading path where there are no pages ("guide.docx › Install › Linux"). `name` stands in
 * for a document sent as text (its title or external id).
 */
export function locationLabel(location: ChunkLocation, name: string): string {
  const parts = [location.fileName ?? name];
  const { pageStart, pageEnd, pageUnit } = location;
  const range = pageStart !== null && pageEnd !== null && pageEnd > pageStart;
  if (pageStart !== null && pageUnit === "slide")
    parts.push(range ? `slides ${pageStart}–${pageEnd}` : `slide ${pageStart}`);
  else if (pageStart !== null) parts.push(range ? `pp. ${pageStart}–${pageEnd}` : `p. ${pageStart}`);
  const label = parts.join(", ");
  const headings = location.headingPath.filter((h) => h !== "");
  return pageStart === null && headings.length > 0 ? `${label} › ${headings.join(" › ")}` : label;
}

/** The location as the API shows it, beside search results and citations. */
export function locationJson(location: ChunkLocation, name: string) {
  return {
    file_name: location.fileName,
    page_start: location.pageStart,
    page_end: location.pageEnd,
    page_unit: location.pageUnit,
    label: locationLabel(location, name),
  };
}
