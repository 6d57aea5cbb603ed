import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { Api, DocumentStatus, DocumentSummary } from "../api.ts";
import { encode } from "../api.ts";
import { DocumentState, Message, Select } from "../controls.tsx";
import { documentHref } from "../route.ts";

const PAGE = 50;
const STATUSES: readonly (readonly [DocumentStatus, string])[] = [
  ["pending", "queued or in progress"],
  ["ready", "ready"],
  ["failed", "failed"],
  ["needs_ocr", "needs OCR"],
];
const ACCEPT = ".pdf,.docx,.pptx,.md,.markdown,.txt,.text,.html,.htm";

interface Upload {
  name: string;
  progress: number;
  state: "uploading" | "queued" | "failed";
  error?: string;
}

/**
 * A collection's documents: upload many files (drag and drop or the picker, one progress line each),
 * their status as they are parsed and embedded, filtered and paged by external id (keyset paging,
 * the same cost on page 1,000 as on page 1).
 */
export function Documents({ api, collection }: { api: Api; collection: string }) {
  const [status, setStatus] = useState<DocumentStatus | "">("");
  const [pages, setPages] = useState<string[]>([""]); // the `after` of each page seen, for going back
  const [documents, setDocuments] = useState<DocumentSummary[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [message, setMessage] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const picker = useRef<HTMLInputElement>(null);
  const after = pages[pages.length - 1] ?? "";

  const load = useCallback(async () => {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (status) query.set("status", status);
    if (after) query.set("after", after);
    try {
      const body = await api.request<{ documents: DocumentSummary[]; next_after: string | null }>(
        "GET",
        `/v1/collections/${encode(collection)}/documents?${query}`,
      );
      setDocuments(body.documents);
      setNext(body.next_after);
    } catch (error) {
      setMessage((error as Error).message);
    }
  }, [api, collection, status, after]);
  useEffect(() => void load(), [load]);

  // While documents are on their way to ready, the list follows them.
  const settling = documents?.some((d) => d.status === "pending") ?? false;
  useEffect(() => {
    if (!settling && !uploads.some((u) => u.state === "uploading")) return;
    const timer = setInterval(() => void load(), 1500);
    return () => clearInterval(timer);
  }, [settling, uploads, load]);

  const upload = async (files: readonly File[]) => {
    setMessage(null);
    setUploads(files.map((file) => ({ name: file.name, progress: 0, state: "uploading" })));
    const update = (name: string, change: Partial<Upload>) =>
      setUploads((all) => all.map((u) => (u.name === name ? { ...u, ...change } : u)));
    for (const file of files) {
      try {
        await api.upload(`/v1/collections/${encode(collection)}/documents/${encode(file.name)}`, file, (progress) =>
          update(file.name, { progress }),
        );
        update(file.name, { progress: 1, state: "queued" });
      } catch (error) {
        update(file.name, { state: "failed", error: (error as Error).message });
      }
      await load();
    }
  };

  return (
    <section aria-labelledby="documents-title">
      <p>
        <a href="#/">Collections</a> /
      </p>
      <h1 id="documents-title">{collection}</h1>
      <Message text={message} />
      <div
        class={dragging ? "drop dragging" : "drop"}
        onDragOver={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(event) => {
          event.preventDefault();
          setDragging(false);
          void upload([...(event.dataTransfer?.files ?? [])]);
        }}
      >
        <p>Drop PDF, Word, PowerPoint, Markdown, HTML or text files here, or</p>
        <label class="button" for="file-picker">
          Choose files
        </label>
        <input
          id="file-picker"
          ref={picker}
          class="visually-hidden"
          type="file"
          multiple
          accept={ACCEPT}
          onChange={(event) => {
            void upload([...(event.currentTarget.files ?? [])]);
            if (picker.current) picker.current.value = "";
          }}
        />
      </div>
      {uploads.length > 0 && (
        <ul class="uploads" aria-label="Uploads">
          {uploads.map((u) => (
            <li key={u.name}>
              <span>{u.name}</span> <progress max={1} value={u.progress} aria-label={`Upload of ${u.name}`} />{" "}
              <span class={u.state === "failed" ? "error" : ""}>
                {u.state === "failed" ? `failed: ${u.error}` : u.state}
              </span>
            </li>
          ))}
        </ul>
      )}
      <div class="toolbar">
        <Select
          id="status-filter"
          label="Status"
          value={status}
          options={[["", "all"], ...STATUSES]}
          onChange={(value) => {
            setStatus(value as DocumentStatus | "");
            setPages([""]);
          }}
        />
      </div>
      {documents === null ? (
        <p>Loading…</p>
      ) : documents.length === 0 ? (
        <p>No documents{status ? ` ${STATUSES.find(([value]) => value === status)?.[1]}` : ""}.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Document</th>
              <th scope="col" class="optional">
                Type
              </th>
              <th scope="col">Status</th>
              <th scope="col">Chunks</th>
              <th scope="col" class="optional">
                Updated
              </th>
            </tr>
          </thead>
          <tbody>
            {documents.map((d) => (
              <tr key={d.id}>
                <td>
                  <a href={documentHref(collection, d.external_id)}>{d.title ?? d.external_id}</a>
                </td>
                <td class="optional">
                  {d.content_type.split("/").pop()?.replace("vnd.openxmlformats-officedocument.", "")}
                </td>
                <td>
                  <DocumentState document={d} />
                </td>
                <td>{d.chunk_count}</td>
                <td class="optional">{new Date(d.updated_at).toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={pages.length === 1} onClick={() => setPages(pages.slice(0, -1))}>
          Previous
        </button>
        <button type="button" disabled={!next} onClick={() => next && setPages([...pages, next])}>
          Next
        </button>
      </nav>
    </section>
  );
}
