import { useState } from "preact/hooks";
import type { Api, Location } from "../api.ts";
import { Message, NumberField, Select, useCollectionChoice } from "../controls.tsx";

const MODES = [
  ["hybrid", "hybrid"],
  ["bm25", "BM25"],
  ["vector", "vector"],
] as const;
const FUSIONS = [
  ["rrf", "reciprocal rank"],
  ["weighted", "weighted scores"],
] as const;

interface LegScore {
  rank: number | null;
  score: number | null;
}

interface Hit {
  chunk_id: string;
  external_id: string;
  title: string | null;
  content: string;
  location: Location;
  score: number;
  explain?: { vector: LegScore; bm25: LegScore };
}

interface Outcome {
  results: Hit[];
  served_by: string;
  vector_path: string;
  timings_ms: Record<string, number>;
}

const leg = (score: LegScore | undefined) =>
  score?.rank == null ? "—" : `#${score.rank} (${score.score?.toFixed(4) ?? "?"})`;

/** Retrieval on its own: mode, fusion, k and a filter; each result with its rank and score per leg, and the timings. */
export function Search({ api }: { api: Api }) {
  const { collection, setCollection, options } = useCollectionChoice(api);
  const [query, setQuery] = useState("");
  const [mode, setMode] = useState("hybrid");
  const [fusion, setFusion] = useState("rrf");
  const [k, setK] = useState(10);
  const [filter, setFilter] = useState("");
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [error, setError] = useState<string | null>(null);

  const run = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const parsedFilter: unknown = filter.trim() ? JSON.parse(filter) : undefined;
      setOutcome(
        await api.request<Outcome>("POST", "/v1/search", {
          collection,
          query,
          mode,
          k,
          explain: true,
          ...(mode === "hybrid" ? { fusion } : {}),
          ...(parsedFilter === undefined ? {} : { filter: parsedFilter }),
        }),
      );
    } catch (failure) {
      setOutcome(null);
      setError(
        failure instanceof SyntaxError ? `The filter is not JSON: ${failure.message}` : (failure as Error).message,
      );
    }
  };

  return (
    <section aria-labelledby="search-title">
      <h1 id="search-title">Search</h1>
      <form class="inline" onSubmit={run}>
        <Select
          id="search-collection"
          label="Collection"
          value={collection}
          options={options}
          onChange={setCollection}
        />
        <label for="search-query">Query</label>
        <input id="search-query" value={query} required onInput={(event) => setQuery(event.currentTarget.value)} />
        <Select id="search-mode" label="Mode" value={mode} options={MODES} onChange={setMode} />
        <Select
          id="search-fusion"
          label="Fusion"
          value={fusion}
          options={FUSIONS}
          disabled={mode !== "hybrid"}
          onChange={setFusion}
        />
        <NumberField id="search-k" label="k" min={1} max={100} value={k} onChange={setK} />
        <label for="search-filter">Filter (JSON)</label>
        <input
          id="search-filter"
          placeholder='{"metadata": {"lang": "en"}}'
          value={filter}
          onInput={(event) => setFilter(event.currentTarget.value)}
        />
        <button type="submit" disabled={!collection}>
          Search
        </button>
      </form>
      <Message kind="alert" text={error} />
      {outcome && (
        <>
          <p class="dim" role="status">
            {outcome.results.length} results from {outcome.served_by} ({outcome.vector_path});{" "}
            {Object.entries(outcome.timings_ms)
              .map(([stage, ms]) => `${stage} ${ms.toFixed(1)} ms`)
              .join(", ")}
          </p>
          <table aria-label="Results">
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Passage</th>
                <th scope="col">Score</th>
                <th scope="col">Vector</th>
                <th scope="col">BM25</th>
              </tr>
            </thead>
            <tbody>
              {outcome.results.map((hit, index) => (
                <tr key={hit.chunk_id}>
                  <td>{index + 1}</td>
                  <td>
                    <strong>{hit.location.label}</strong>
                    <p class="snippet">{hit.content.slice(0, 300)}</p>
                  </td>
                  <td>{hit.score.toFixed(4)}</td>
                  <td>{leg(hit.explain?.vector)}</td>
                  <td>{leg(hit.explain?.bm25)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
