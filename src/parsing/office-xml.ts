import { XMLParser } from "fast-xml-parser";
import { ParseRefusal } from "./parsed-document.ts";

/** An element as fast-xml-parser gives it in document order: `{ tag: children, ":@": attributes }`. */
export type XmlNode = Record<string, unknown>;

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: "",
  trimValues: false,
  parseTagValue: false,
  parseAttributeValue: false,
});

/**
 * Parses one XML part of an Office file. Office parts never declare a DOCTYPE; one that does is
 * refused rather than given to entity expansion (the "billion laughs" of hostile XML).
 */
export function parseXml(bytes: Uint8Array, part: string): XmlNode[] {
  const xml = new TextDecoder("utf-8").decode(bytes);
  if (/<!DOCTYPE/i.test(xml)) throw new ParseRefusal(`${part} declares a DOCTYPE, which Office files never do`);
  try {
    return parser.parse(xml) as XmlNode[];
  } catch (error) {
    throw new ParseRefusal(`${part} is not well-formed XML (${(error as Error).message})`);
  }
}

export function tagOf(node: XmlNode): string | undefined {
  return Object.keys(node).find((key) => key !== ":@");
}

export function childrenOf(node: XmlNode): XmlNode[] {
  const tag = tagOf(node);
  const children = tag === undefined ? undefined : node[tag];
  return Array.isArray(children) ? (children as XmlNode[]) : [];
}

export function attributeOf(node: XmlNode, name: string): string | undefined {
  const attributes = node[":@"] as Record<string, string> | undefined;
  return attributes?.[name];
}

/** Every element named `tag` (or one of `tag`) under `nodes`, depth first in document order (not inside a match). */
export function findAll(nodes: readonly XmlNode[], tag: string | readonly string[]): XmlNode[] {
  const tags = new Set(typeof tag === "string" ? [tag] : tag);
  const found: XmlNode[] = [];
  const stack = [...nodes].reverse();
  while (stack.length > 0) {
    const node = stack.pop() as XmlNode;
    if (tags.has(tagOf(node) ?? "")) found.push(node);
    else stack.push(...[...childrenOf(node)].reverse());
  }
  return found;
}

/**
 * The text of the `a:t` runs under `nodes` in order, each `a:br` a line break (an iterative walk:
 * nesting depth is the file's to choose).
 */
export function runText(nodes: readonly XmlNode[]): string {
  return findAll(nodes, ["a:t", "a:br"])
    .map((node) =>
      tagOf(node) === "a:br"
        ? "\n"
        : childrenOf(node)
            .map((child) => (typeof child["#text"] === "string" ? child["#text"] : ""))
            .join(""),
    )
    .join("");
}

/** The relationships of a part (`_rels/*.rels`): id → target, and type → targets. */
export function relationships(nodes: readonly XmlNode[]): { byId: Map<string, string>; byType: Map<string, string[]> } {
  const byId = new Map<string, string>();
  const byType = new Map<string, string[]>();
  for (const rel of findAll(nodes, "Relationship")) {
    const id = attributeOf(rel, "Id");
    const target = attributeOf(rel, "Target");
    const type = attributeOf(rel, "Type")?.split("/").pop();
    if (!id || !target) continue;
    byId.set(id, target);
    if (type) byType.set(type, [...(byType.get(type) ?? []), target]);
  }
  return { byId, byType };
}

/** A relationship target relative to the part's folder (`slides/slide1.xml` from `ppt/`), as a path in the archive. */
export function resolvePart(folder: string, target: string): string {
  const parts = target.startsWith("/") ? [] : folder.split("/").filter(Boolean);
  for (const segment of target.split("/")) {
    if (segment === "..") parts.pop();
    else if (segment !== "." && segment !== "") parts.push(segment);
  }
  return parts.join("/");
}
