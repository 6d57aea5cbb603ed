import { useCallback, useEffect, useState } from "preact/hooks";
import type { Api, ChunkJson, DocumentSummary } from "../api.ts";
import { encode } from "../api.ts";
import { DocumentState, Message } from "../controls.tsx";
import { collectionHref } from "../route.ts";

/** Documents kept as files (PDF, Word, PowerPoint): those can be parsed again. */
const FILE_TYPES = new Set([
  "application/pdf",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation",
]);

/** One document: its status, download of the original, reparse, delete, and its chunks with their locations. */
export function DocumentView({ api, collection, externalId }: { api: Api; collection: string; externalId: string }) {
  const base = `/v1/collections/${encode(collection)}/documents/${encode(externalId)}`;
  const [document, setDocument] = useState<DocumentSummary | null>(null);
  const [chunks, setChunks] = useState<ChunkJson[]>([]);
  const [next, setNext] = useState<number | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setDocument((await api.request<{ document: DocumentSummary }>("GET", base)).document);
      const body = await api.request<{ chunks: ChunkJson[]; next_after: number | null }>("GET", `${base}/chunks`);
      setChunks(body.chunks);
      setNext(body.next_after);
    } catch (error) {
      setMessage((error as Error).message);
    }
  }, [api, base]);
  useEffect(() => void load(), [load]);
  useEffect(() => {
    if (document?.status !== "pending") return;
    const timer = setInterval(() => void load(), 1500);
    return () => clearInterval(timer);
  }, [document?.status, load]);

  const more = async () => {
    if (next === null) return;
    const body = await api.request<{ chunks: ChunkJson[]; next_after: number | null }>(
      "GET",
      `${base}/chunks?after=${next}`,
    );
    setChunks([...chunks, ...body.chunks]);
    setNext(body.next_after);
  };

  const download = async () => {
    const response = await api.raw(`${base}/original`);
    const url = URL.createObjectURL(await response.blob());
    const link = Object.assign(window.document.createElement("a"), {
      href: url,
      download: document?.file_name ?? externalId,
    });
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };

  const act = async (what: "reparse" | "delete") => {
    setMessage(null);
    try {
      if (what === "reparse") {
        await api.request("POST", `${base}/reparse`);
        setMessage("Queued to be parsed again.");
        await load();
      } else if (confirm(`Delete document "${externalId}" and its chunks?`)) {
        await api.request("DELETE", base);
        location.hash = collectionHref(collection);
      }
    } catch (error) {
      setMessage((error as Error).message);
    }
  };

  return (
    <section aria-labelledby="document-title">
      <p>
        <a href="#/">Collections</a> / <a href={collectionHref(collection)}>{collection}</a> /
      </p>
      <h1 id="document-title">{document?.title ?? externalId}</h1>
      <Message text={message} />
      {document && (
        <dl class="facts">
          <dt>External id</dt>
          <dd>{document.external_id}</dd>
          <dt>Type</dt>
          <dd>{document.content_type}</dd>
          <dt>Status</dt>
          <dd>
            <DocumentState document={document} />
          </dd>
          <dt>Version</dt>
          <dd>{document.version}</dd>
          <dt>Metadata</dt>
          <dd>
            <code>{JSON.stringify(document.metadata)}</code>
          </dd>
        </dl>
      )}
      <div class="toolbar">
        <button type="button" onClick={() => void download()}>
          Download original
        </button>
        {document && FILE_TYPES.has(document.content_type) && (
          <button type="button" class="secondary" onClick={() => void act("reparse")}>
            Reparse
          </button>
        )}
        <button type="button" class="danger" onClick={() => void act("delete")}>
          Delete
        </button>
      </div>
      <h2>Chunks</h2>
      <ol class="chunks" aria-label="Chunks">
        {chunks.map((chunk) => (
          <li key={chunk.id}>
            <p class="where">
              <strong>{chunk.location.label}</strong>
              {chunk.heading_path.length > 0 && chunk.location.page_start !== null && (
                <span> › {chunk.heading_path.join(" › ")}</span>
              )}{" "}
              <span class="dim">
                characters {chunk.char_start}–{chunk.char_end}, {chunk.token_count} tokens
              </span>
            </p>
            <pre class="passage">{chunk.content}</pre>
          </li>
        ))}
      </ol>
      {next !== null && (
        <button type="button" onClick={() => void more()}>
          More chunks
        </button>
      )}
    </section>
  );
}
