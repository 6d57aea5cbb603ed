import DOMPurify from "dompurify";
import { marked } from "marked";

/** An answer's Markdown as HTML, sanitised (DOMPurify): a model's output is untrusted text. */
export function Markdown({ text }: { text: string }) {
  const html = DOMPurify.sanitize(marked.parse(text, { async: false }));
  return <div class="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}
