import { describe, expect, it, onTestFinished } from "vitest";
import { createDevInference as createBackend, startDevInferenceServer } from "../../src/dev/dev-server.ts";
import { hashEmbedding } from "../../src/dev/hash-embedding.ts";

const options = { dimension: 8, embeddingModel: "dev-embed", chatModel: "dev-chat" };

/** A dev backend closed (its embedding thread stopped) when the test ends. */
function createDevInference(settings: typeof options) {
  const dev = createBackend(settings);
  onTestFinished(() => dev.close());
  return dev;
}

async function embed(
  dev: ReturnType<typeof createDevInference>,
  input: string[],
  encoding: "float" | "base64" = "float",
): Promise<number[][]> {
  const response = await dev.app.request("/v1/embeddings", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "dev-embed", input, encoding_format: encoding }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { data: { index: number; embedding: number[] | string }[] };
  return body.data
    .sort((a, b) => a.index - b.index)
    .map(({ embedding }) =>
      typeof embedding === "string"
        ? Array.from(new Float32Array(Uint8Array.from(Buffer.from(embedding, "base64")).buffer))
        : embedding,
    );
}

describe("the dev backend's embeddings", () => {
  it("are the hashed vectors, in float or base64, computed once per distinct input", async () => {
    const dev = createDevInference(options);
    const floats = await embed(dev, ["alpha beta", "gamma", "alpha beta"]);
    expect(floats).toEqual([
      hashEmbedding("alpha beta", options.dimension),
      hashEmbedding("gamma", options.dimension),
      hashEmbedding("alpha beta", options.dimension),
    ]);
    expect(await embed(dev, ["alpha beta", "gamma", "alpha beta"], "base64")).toEqual(floats);
    expect(dev.stats.embeddedInputs).toBe(6);
  });
});

describe("the dev backend on a port", () => {
  it("answers only requests with its key", async () => {
    const server = await startDevInferenceServer({ ...options, apiKey: "the-key" });
    onTestFinished(() => server.close());
    const models = (key?: string) =>
      fetch(`${server.url}/models`, key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } });
    const missing = await models();
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key");
    expect((await models("the-kez")).status).toBe(401);
    expect((await models("the-key")).status).toBe(200);
  });
});

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
