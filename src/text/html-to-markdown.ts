import { Tokenizer } from "htmlparser2";

/**
 * HTML → the Markdown pgrag stores, chunks and cites: headings as `#` lines (so chunks follow
 * sections), paragraphs and block elements as blank-line-separated blocks, list items as `- ` lines,
 * table rows as `cell | cell` lines, `<pre>` as fenced code. Links and inline markup become their
 * text; scripts, styles and other non-content elements are dropped.
 *
 * Driven by htmlparser2's tokenizer with a flat state machine of counters, not an element stack:
 * time is linear in the input and nesting depth costs neither stack nor time (htmlparser2's own
 * Parser keeps its open elements with Array.unshift, quadratic in depth).
 */
export function htmlToMarkdown(html: string): string {
  const out = new MarkdownWriter();
  let skipped = 0; // depth inside elements whose content is not text (script, style, …)
  let preformatted = 0;
  let cellsInRow = 0;
  let inCell = 0; // depth inside table cells, whose paragraphs stay on the row's line
  const text = (value: string) => {
    if (skipped > 0) return;
    if (preformatted > 0) out.raw(value);
    else out.text(value);
  };
  const open = (name: string) => {
    if (SKIPPED.has(name)) skipped++;
    if (skipped > 0) return;
    const level = HEADINGS.indexOf(name) + 1;
    if (level > 0) out.startHeading(level);
    else if (name === "pre") {
      out.block();
      out.raw("```\n");
      preformatted++;
    } else if (name === "li") out.line("- ");
    else if (name === "tr") {
      out.line("");
      cellsInRow = 0;
    } else if (name === "td" || name === "th") {
      if (cellsInRow > 0) out.raw(" | ");
      cellsInRow++;
      inCell++;
    } else if (inCell > 0 && (name === "br" || BLOCKS.has(name))) out.text(" ");
    else if (name === "br") out.line("");
    else if (name === "hr") {
      out.block();
      out.raw("---");
      out.block();
    } else if (BLOCKS.has(name)) out.block();
  };
  const close = (name: string) => {
    if (SKIPPED.has(name)) {
      skipped = Math.max(0, skipped - 1);
      return;
    }
    if (skipped > 0) return;
    if (name === "td" || name === "th") inCell = Math.max(0, inCell - 1);
    if (HEADINGS.includes(name)) out.endHeading();
    else if (name === "pre" && preformatted > 0) {
      preformatted--;
      out.raw("\n```");
      out.block();
    } else if (inCell > 0 && BLOCKS.has(name)) out.text(" ");
    else if (BLOCKS.has(name)) out.block();
  };
  const tokenizer = new Tokenizer(
    { decodeEntities: true },
    {
      ontext: (start, end) => text(html.slice(start, end)),
      ontextentity: (codepoint) => text(String.fromCodePoint(codepoint)),
      oncdata: (start, end) => text(html.slice(start, end)),
      onopentagname: (start, end) => open(html.slice(start, end).toLowerCase()),
      onclosetag: (start, end) => close(html.slice(start, end).toLowerCase()),
      onattribdata: ignore,
      onattribentity: ignore,
      onattribend: ignore,
      onattribname: ignore,
      oncomment: ignore,
      ondeclaration: ignore,
      onend: ignore,
      onopentagend: ignore,
      onprocessinginstruction: ignore,
      onselfclosingtag: ignore,
    },
  );
  tokenizer.write(html);
  tokenizer.end();
  return out.toString();
}

function ignore(): void {}

const HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"];
const SKIPPED = new Set(["script", "style", "title", "noscript", "template", "svg", "math", "iframe", "object"]);
const BLOCKS = new Set([
  "p",
  "div",
  "section",
  "article",
  "header",
  "footer",
  "main",
  "aside",
  "nav",
  "blockquote",
  "figure",
  "figcaption",
  "form",
  "fieldset",
  "table",
  "thead",
  "tbody",
  "tfoot",
  "caption",
  "ul",
  "ol",
  "dl",
  "dt",
  "dd",
  "address",
  "details",
  "summary",
  "body",
  "html",
]);

/** Accumulates output pieces and joins once; white space collapses as a browser would show it. */
class MarkdownWriter {
  readonly #pieces: string[] = [];
  /** Line breaks owed before the next text: 1 for a new line, 2 for a new block. */
  #pendingBreak = 0;
  #atLineStart = true;
  #spaceOwed = false;
  #inHeading = false;

  text(text: string): void {
    let start = 0;
    for (let i = 0; i <= text.length; i++) {
      const atEnd = i === text.length;
      if (!atEnd && !isSpace(text.charCodeAt(i))) continue;
      if (i > start) this.#word(text.slice(start, i));
      if (!atEnd) this.#spaceOwed = true;
      start = i + 1;
    }
  }

  raw(text: string): void {
    this.#flushBreak();
    this.#pieces.push(text);
    this.#atLineStart = text.endsWith("\n");
    this.#spaceOwed = false;
  }

  /** A new line (a list item, a table row, a <br>); inside a heading, a space. */
  line(prefix: string): void {
    if (this.#inHeading) {
      this.#spaceOwed = true;
      return;
    }
    this.#pendingBreak = Math.max(this.#pendingBreak, this.#pieces.length > 0 ? 1 : 0);
    this.#spaceOwed = false;
    if (prefix) this.raw(prefix);
  }

  block(): void {
    if (this.#inHeading) return;
    this.#pendingBreak = this.#pieces.length > 0 ? 2 : 0;
    this.#spaceOwed = false;
  }

  startHeading(level: number): void {
    this.block();
    this.raw(`${"#".repeat(level)} `);
    this.#inHeading = true;
  }

  endHeading(): void {
    this.#inHeading = false;
    this.block();
  }

  toString(): string {
    return this.#pieces.join("");
  }

  #word(word: string): void {
    this.#flushBreak();
    if (this.#spaceOwed && !this.#atLineStart && !this.#pieces[this.#pieces.length - 1]?.endsWith(" ")) {
      this.#pieces.push(" ");
    }
    this.#pieces.push(word);
    this.#atLineStart = false;
    this.#spaceOwed = false;
  }

  #flushBreak(): void {
    if (this.#pendingBreak === 0) return;
    this.#pieces.push(this.#pendingBreak === 2 ? "\n\n" : "\n");
    this.#pendingBreak = 0;
    this.#atLineStart = true;
  }
}

function isSpace(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 13 || code === 12 || code === 0xa0;
}
