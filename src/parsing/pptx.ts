import { type ParseLimits, ParseRefusal, type ParsedDocument } from "./parsed-document.ts";
import {
  attributeOf,
  childrenOf,
  findAll,
  parseXml,
  relationships,
  resolvePart,
  runText,
  tagOf,
  type XmlNode,
} from "./office-xml.ts";
import { readZipEntries, zipEntryNames } from "./zip-archive.ts";
import { PagedMarkdown } from "./paged-markdown.ts";

const PRESENTATION = "ppt/presentation.xml";
const TITLE_PLACEHOLDERS = new Set(["title", "ctrTitle"]);

/**
 * A presentation's text slide by slide, in the presentation's order: the slide's title as a
 * heading, its text boxes' paragraphs, its tables as `cell | cell` rows, then its speaker notes,
 * marked as such. Each slide is a page of the result (`pageStarts`).
 */
export function parsePptx(bytes: Uint8Array, limits: ParseLimits): ParsedDocument {
  const names = new Set(zipEntryNames(bytes, limits));
  if (!names.has(PRESENTATION))
    throw new ParseRefusal("the file is not a PowerPoint presentation (no ppt/presentation.xml)");
  const wanted = (name: string) =>
    name === PRESENTATION ||
    name === "ppt/_rels/presentation.xml.rels" ||
    /^ppt\/(slides|notesSlides)\/(_rels\/)?[^/]+\.xml(\.rels)?$/.test(name);
  const parts = readZipEntries(bytes, wanted);
  const part = (name: string) => {
    const content = parts.get(name);
    return content ? parseXml(content, name) : [];
  };

  const presentationRels = relationships(part("ppt/_rels/presentation.xml.rels")).byId;
  const slideIds = findAll(part(PRESENTATION), "p:sldId");
  if (slideIds.length > limits.maxPages) {
    throw new ParseRefusal(
      `the presentation has ${slideIds.length} slides, over the limit of ${limits.maxPages} (PGRAG_PARSE_MAX_PAGES)`,
    );
  }
  const out = new PagedMarkdown(limits.maxTextBytes);
  for (const [index, slideId] of slideIds.entries()) {
    const target = presentationRels.get(attributeOf(slideId, "r:id") ?? "");
    out.startPage();
    if (!target) continue;
    const slidePath = resolvePart("ppt", target);
    const slide = part(slidePath);
    const shapes = findAll(slide, "p:spTree");
    const title = titleOf(shapes);
    out.heading(1, title || `Slide ${index + 1}`);
    for (const block of shapeBlocks(shapes, true)) out.paragraph(block);
    const slideFolder = slidePath.slice(0, slidePath.lastIndexOf("/"));
    const slideRels = relationships(part(`${slideFolder}/_rels/${slidePath.slice(slideFolder.length + 1)}.rels`));
    for (const notesTarget of slideRels.byType.get("notesSlide") ?? []) {
      const notes = shapeBlocks(findAll(part(resolvePart(slideFolder, notesTarget)), "p:spTree"), false, "body");
      if (notes.length > 0) out.paragraph(`Speaker notes: ${notes.join(" ")}`);
    }
  }
  return out.finish();
}

function placeholderType(shape: XmlNode): string | undefined {
  const [placeholder] = findAll(childrenOf(shape), "p:ph");
  if (!placeholder) return undefined;
  return attributeOf(placeholder, "type") ?? "body";
}

function titleOf(trees: readonly XmlNode[]): string {
  const shape = findAll(trees, "p:sp").find((s) => TITLE_PLACEHOLDERS.has(placeholderType(s) ?? ""));
  return shape ? paragraphs(shape).join(" ").trim() : "";
}

function paragraphs(node: XmlNode): string[] {
  return findAll(childrenOf(node), "a:p")
    .map((p) =>
      runText([p])
        .replace(/[^\S\n]+/g, " ")
        .trim(),
    )
    .filter((text) => text !== "");
}

/**
 * The text blocks of a slide's shapes in their order: each text box's paragraphs (the title's
 * left out when it is the heading already) and each table's rows. `onlyPlaceholder` keeps only
 * the shapes of that placeholder type (the notes page's body, not its slide image or number).
 */
function shapeBlocks(trees: readonly XmlNode[], skipTitle: boolean, onlyPlaceholder?: string): string[] {
  const blocks: string[] = [];
  // An iterative walk in document order that stops at text boxes and tables (groups nest as deep as the file says).
  const stack = trees.flatMap(childrenOf).reverse();
  while (stack.length > 0) {
    const node = stack.pop() as XmlNode;
    const tag = tagOf(node);
    if (tag === "a:tbl") {
      const rows = findAll(childrenOf(node), "a:tr").map((row) =>
        findAll(childrenOf(row), "a:tc")
          .map((cell) => paragraphs(cell).join(" "))
          .join(" | "),
      );
      if (rows.length > 0) blocks.push(rows.join("\n"));
    } else if (tag === "p:sp") {
      const type = placeholderType(node);
      if (skipTitle && TITLE_PLACEHOLDERS.has(type ?? "")) continue;
      if (onlyPlaceholder !== undefined && type !== onlyPlaceholder) continue;
      blocks.push(...paragraphs(node));
    } else {
      stack.push(...[...childrenOf(node)].reverse());
    }
  }
  return blocks;
}
