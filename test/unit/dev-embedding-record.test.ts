import { describe, expect, it } from "vitest";
import { createDevInference } from "../../src/dev/dev-server.ts";
import { hashEmbedding } from "../../src/dev/hash-embedding.ts";

const options = { dimension: 8, embeddingModel: "dev-embed", chatModel: "dev-chat" };

async function embed(dev: ReturnType<typeof createDevInference>, input: string[]): Promise<number[][]> {
  const response = await dev.app.request("/v1/embeddings", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "dev-embed", input }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { data: { index: number; embedding: number[] }[] };
  return body.data.sort((a, b) => a.index - b.index).map((d) => d.embedding);
}

describe("the dev backend's embedding record", () => {
  it("keeps nothing unless recording, then keeps each vector it computed under its input", async () => {
    const dev = createDevInference(options);
    await embed(dev, ["not kept"]);
    expect(dev.embeddingRecord.vectors.size).toBe(0);

    dev.embeddingRecord.recording = true;
    const [first, second] = await embed(dev, ["alpha beta", "gamma delta"]);
    expect(dev.embeddingRecord.vectors.get("alpha beta")).toEqual(first);
    expect(dev.embeddingRecord.vectors.get("gamma delta")).toEqual(second);
    expect(first).toEqual(hashEmbedding("alpha beta", options.dimension));
  });

  it("answers a recorded input from the record, and computes the others", async () => {
    const dev = createDevInference(options);
    // A vector no hashing would give: only the record can answer it.
    const marker = [1, 0, 0, 0, 0, 0, 0, 0];
    dev.embeddingRecord.vectors.set("recorded", marker);
    const [recorded, computed] = await embed(dev, ["recorded", "computed"]);
    expect(recorded).toEqual(marker);
    expect(computed).toEqual(hashEmbedding("computed", options.dimension));
    expect(dev.stats.embeddedInputs).toBe(2);
  });

  it("is bypassed by the wrong-dimension fault, which neither reads nor fills it", async () => {
    const dev = createDevInference(options);
    dev.embeddingRecord.vectors.set("recorded", [1, 0, 0, 0, 0, 0, 0, 0]);
    dev.embeddingRecord.recording = true;
    dev.faults.wrongDimension = true;
    const [short, fresh] = await embed(dev, ["recorded", "fresh"]);
    expect(short).toHaveLength(options.dimension - 1);
    expect(fresh).toHaveLength(options.dimension - 1);
    expect(dev.embeddingRecord.vectors.has("fresh")).toBe(false);
  });
});
