import { useCallback, useEffect, useState } from "preact/hooks";
import type { Api, Collection } from "../api.ts";
import { encode } from "../api.ts";
import { Message, NumberField, Select } from "../controls.tsx";
import { collectionHref } from "../route.ts";

const LANGUAGES = ["english", "simple", "german", "french", "spanish", "italian", "dutch", "portuguese"];

/** The tenant's collections: list, create (language, chunk size), delete (confirmed, with its progress). */
export function Collections({ api }: { api: Api }) {
  const [collections, setCollections] = useState<Collection[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [language, setLanguage] = useState("english");
  const [maxTokens, setMaxTokens] = useState(384);
  const [deleting, setDeleting] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setCollections((await api.request<{ collections: Collection[] }>("GET", "/v1/collections")).collections);
    } catch (error) {
      setMessage((error as Error).message);
    }
  }, [api]);
  useEffect(() => void load(), [load]);

  const create = async (event: Event) => {
    event.preventDefault();
    setMessage(null);
    try {
      await api.request("POST", "/v1/collections", {
        name,
        language,
        chunking: { max_tokens: maxTokens, overlap_tokens: Math.min(48, Math.floor(maxTokens / 2)), min_tokens: 64 },
      });
      setName("");
      await load();
    } catch (error) {
      setMessage((error as Error).message);
    }
  };

  const remove = async (collection: string) => {
    if (!confirm(`Delete collection "${collection}" with all its documents, chunks and conversations?`)) return;
    setDeleting(collection);
    setMessage(null);
    try {
      const { documents } = await api.request<{ documents: number }>("DELETE", `/v1/collections/${encode(collection)}`);
      setMessage(`Deleted "${collection}" and its ${documents} documents.`);
      await load();
    } catch (error) {
      setMessage((error as Error).message);
    } finally {
      setDeleting(null);
    }
  };

  return (
    <section aria-labelledby="collections-title">
      <h1 id="collections-title">Collections</h1>
      <Message text={message} />
      {collections === null ? (
        <p>Loading…</p>
      ) : collections.length === 0 ? (
        <p>No collections yet: create one below.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col" class="optional">
                Language
              </th>
              <th scope="col">Chunk size</th>
              <th scope="col" class="optional">
                Created
              </th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {collections.map((c) => (
              <tr key={c.name}>
                <td>
                  <a href={collectionHref(c.name)}>{c.name}</a>
                </td>
                <td class="optional">{c.language}</td>
                <td>{c.chunking.max_tokens} tokens</td>
                <td class="optional">{new Date(c.created_at).toLocaleString()}</td>
                <td>
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Delete collection ${c.name}`}
                    disabled={deleting !== null}
                    onClick={() => void remove(c.name)}
                  >
                    {deleting === c.name ? "Deleting…" : "Delete"}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="inline" onSubmit={create} aria-labelledby="create-title">
        <h2 id="create-title">New collection</h2>
        <label for="collection-name">Name</label>
        <input
          id="collection-name"
          value={name}
          required
          pattern="[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}"
          title="1–100 letters, digits, _ . -, starting with a letter or digit"
          onInput={(event) => setName(event.currentTarget.value)}
        />
        <Select
          id="collection-language"
          label="Language"
          value={language}
          options={LANGUAGES.map((l) => [l, l] as const)}
          onChange={setLanguage}
        />
        <NumberField
          id="collection-tokens"
          label="Chunk size (tokens)"
          min={64}
          max={8192}
          value={maxTokens}
          onChange={setMaxTokens}
        />
        <button type="submit">Create</button>
      </form>
    </section>
  );
}
