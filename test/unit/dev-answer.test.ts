import { describe, expect, it } from "vitest";
import { extractiveAnswer, isProse, withinLimits } from "../../src/dev/dev-server.ts";

/** A README's chunks as the prompt puts them: each on one line, white space flattened. */
const README_CONTEXT = [
  "Context:",
  "[1] Quick start",
  '```sh KEY=pgr_… curl -s localhost:8080/v1/search -H "Authorization: Bearer $KEY" -d \'{"collection":"docs","query":"how does read-your-writes work?"}\' ```',
  "[2] Architecture",
  "```mermaid flowchart LR client[HTTP clients] --> api[pgrag API] api -- writes --> pgb[PgBouncer] api -- reads --> pgb ```",
  "[3] Reads and writes",
  "Writes run in a transaction on the primary and return a consistency token. A read that carries the token is served only by a node that has replayed that far, so a client always reads its own writes.",
  "[4] Configuration",
  "| variable | default | meaning | | PGRAG_PORT | 8080 | the port | | PGRAG_READ_YOUR_WRITES | on | reads work with tokens |",
].join("\n");

const ask = (question: string) =>
  extractiveAnswer(
    [
      { role: "system", content: README_CONTEXT },
      { role: "user", content: question },
    ],
    256,
  );

describe("the dev answerer", () => {
  it("answers the README's questions with its prose, not its code, diagrams or tables", () => {
    const answer = ask("How does read-your-writes work?");
    expect(answer).toContain("so a client always reads its own writes. [3]");
    expect(answer).not.toMatch(/curl|flowchart|\|/);
    expect(ask("What is a consistency token?")).toMatch(/return a consistency token\. \[3\]/);
  });

  it("quotes a sentence once when overlapping chunks both hold it", () => {
    const sentence = "A read that carries the token is served only by a node that has replayed that far.";
    const context = ["Context:", "[1] Reads", `Writes return a token. ${sentence}`, "[2] Reads", sentence].join("\n");
    const answer = extractiveAnswer(
      [
        { role: "system", content: context },
        { role: "user", content: "Which node serves a read that carries the token?" },
      ],
      256,
    );
    expect(answer.split(sentence)).toHaveLength(2);
    expect(answer).toContain(`${sentence} [1]`);
  });

  it("tells prose from listings", () => {
    expect(isProse("Writes run in a transaction on the primary and return a consistency token.")).toBe(true);
    expect(isProse("| PGRAG_PORT | 8080 | the port |")).toBe(false);
    expect(isProse("PGRAG_PORT=8080 PGRAG_HOST=127.0.0.1 PGRAG_LOG_LEVEL=info")).toBe(false);
    expect(isProse("flowchart LR client --> api api --> pgb")).toBe(false);
    expect(isProse("x".repeat(500))).toBe(false);
    expect(isProse("# Microstructural development of human newborn cerebral white matter.")).toBe(false);
  });

  it("cuts an answer at max_tokens (finish length) or before a stop sequence (finish stop)", () => {
    const answer = "One two three four five six seven eight.";
    // "three" is two tokens by the estimate (four characters a token).
    expect(withinLimits(answer, 4, [])).toEqual({ text: "One two three", finish: "length" });
    expect(withinLimits(answer, null, ["four"])).toEqual({ text: "One two three ", finish: "stop" });
    expect(withinLimits(answer, 100, [])).toEqual({ text: answer, finish: "stop" });
  });
});
