/** Families of pathological input for the parsers of untrusted text, each made at a given size in bytes. */
const repeatTo = (unit: string, bytes: number) => unit.repeat(Math.max(1, Math.floor(bytes / unit.length)));

export const PARSER_INPUTS = {
  chunking: {
    "a run of punctuation": (n: number) => `a${"!".repeat(n)}a`,
    "a heading followed by spaces": (n: number) => `# a${" ".repeat(n)}b`,
    "text with no white space": (n: number) => "x".repeat(n),
    "sentence ends everywhere": (n: number) => repeatTo("e.g. 1.5! ", n),
    "only line breaks": (n: number) => "\n".repeat(n),
    "headings only": (n: number) => repeatTo("# h\n", n),
  },
  "HTML conversion": {
    "deep nesting": (n: number) => `${repeatTo("<div>", n / 2)}x${repeatTo("</div>", n / 2)}`,
    "unclosed inline tags": (n: number) => repeatTo("<b>", n),
    "a huge table": (n: number) => `<table>${repeatTo("<tr><td>cell</td><td>value</td></tr>", n)}</table>`,
    "a long attribute": (n: number) => `<a href="${"x".repeat(n)}">link</a>`,
    "an unclosed comment": (n: number) => `<!--${"-".repeat(n)}`,
    entities: (n: number) => repeatTo("&amp;&#x41;&nbsp;", n),
  },
} as const;
