import { describe, expect, it } from "vitest";
import { chunkText } from "../../src/text/chunking.ts";
import { htmlToMarkdown } from "../../src/text/html-to-markdown.ts";

describe("htmlToMarkdown", () => {
  it("keeps headings, paragraphs, lists, tables and code, and drops scripts and styles", () => {
    const html = `<html><head><title>Tab</title><style>p { color: red }</style></head><body>
      <h1>Intro  <b>to</b>
      pgrag</h1><p>Hello&nbsp;&amp; <a href="/x">world</a>.<br>Next line</p>
      <ul><li>one</li><li>two <i>three</i></li></ul><script>alert("x")</script>
      <table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>
      <pre>code
  indented</pre><h2>Part 2</h2><div>text</div></body></html>`;
    expect(htmlToMarkdown(html)).toBe(
      "# Intro to pgrag\n\nHello & world.\nNext line\n\n- one\n- two three\n\na | b\n1 | 2\n\n```\ncode\n  indented\n```\n\n## Part 2\n\ntext",
    );
  });

  it("gives headings that the chunker turns into heading paths", () => {
    const markdown = htmlToMarkdown("<h1>Guide</h1><p>Intro.</p><h2>Install</h2><p>Run it.</p>");
    const chunks = chunkText(markdown, { maxTokens: 200, overlapTokens: 0, minTokens: 1 });
    expect(chunks.map((c) => c.headingPath)).toEqual([["Guide"], ["Guide", "Install"]]);
  });

  it("converts nesting a million levels deep without running out of stack", () => {
    const depth = 1_000_000;
    expect(htmlToMarkdown(`${"<div>".repeat(depth)}deep${"</div>".repeat(depth)}`)).toBe("deep");
    expect(htmlToMarkdown(`${"<b>".repeat(depth)}unclosed`)).toBe("unclosed");
  });
});
