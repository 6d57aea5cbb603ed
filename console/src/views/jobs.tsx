import { useCallback, useEffect, useState } from "preact/hooks";
import type { Api, Collection } from "../api.ts";
import { encode } from "../api.ts";
import { Message } from "../controls.tsx";

interface ImportJson {
  id: string;
  collection: string;
  status: string;
  progress: { documents_seen: number; documents_staged: number; documents_unchanged: number; documents_failed: number };
  error: string | null;
  created_at: string;
}

interface BatchJson {
  id: string;
  endpoint: string;
  status: string;
  request_counts: { total: number; completed: number; failed: number };
  created_at: number;
}

const RUNNING_IMPORTS = new Set(["uploading", "queued", "embedding", "indexing"]);
const RUNNING_BATCHES = new Set(["validating", "in_progress", "finalizing", "cancelling"]);

/** Background work: every collection's recent imports and the tenant's batches, with their progress, followed while running. */
export function Jobs({ api }: { api: Api }) {
  const [imports, setImports] = useState<ImportJson[] | null>(null);
  const [batches, setBatches] = useState<BatchJson[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const { collections } = await api.request<{ collections: Collection[] }>("GET", "/v1/collections");
      const perCollection = await Promise.all(
        collections.map((c) =>
          api.request<{ imports: ImportJson[] }>("GET", `/v1/collections/${encode(c.name)}/imports`),
        ),
      );
      setImports(
        perCollection.flatMap((body) => body.imports).sort((a, b) => b.created_at.localeCompare(a.created_at)),
      );
      setBatches((await api.request<{ data: BatchJson[] }>("GET", "/v1/batches?limit=50")).data);
    } catch (failure) {
      setError((failure as Error).message);
    }
  }, [api]);
  useEffect(() => void load(), [load]);
  const running =
    (imports?.some((i) => RUNNING_IMPORTS.has(i.status)) ?? false) ||
    (batches?.some((b) => RUNNING_BATCHES.has(b.status)) ?? false);
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => void load(), 2000);
    return () => clearInterval(timer);
  }, [running, load]);

  return (
    <section aria-labelledby="jobs-title">
      <h1 id="jobs-title">Jobs</h1>
      <Message kind="alert" text={error} />
      <h2>Imports</h2>
      {imports === null ? (
        <p>Loading…</p>
      ) : imports.length === 0 ? (
        <p>No imports.</p>
      ) : (
        <table aria-label="Imports">
          <thead>
            <tr>
              <th scope="col">Collection</th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
              <th scope="col" class="optional">
                Started
              </th>
            </tr>
          </thead>
          <tbody>
            {imports.map((i) => {
              const done = i.progress.documents_staged + i.progress.documents_unchanged + i.progress.documents_failed;
              return (
                <tr key={i.id}>
                  <td>{i.collection}</td>
                  <td>
                    {i.status}
                    {i.error && <span class="reason"> — {i.error}</span>}
                  </td>
                  <td>
                    <progress max={Math.max(1, i.progress.documents_seen)} value={done} aria-label={`Import ${i.id}`} />{" "}
                    {done} of {i.progress.documents_seen} documents ({i.progress.documents_failed} failed)
                  </td>
                  <td class="optional">{new Date(i.created_at).toLocaleString()}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <h2>Batches</h2>
      {batches === null ? (
        <p>Loading…</p>
      ) : batches.length === 0 ? (
        <p>No batches.</p>
      ) : (
        <table aria-label="Batches">
          <thead>
            <tr>
              <th scope="col">Batch</th>
              <th scope="col" class="optional">
                Endpoint
              </th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
            </tr>
          </thead>
          <tbody>
            {batches.map((b) => (
              <tr key={b.id}>
                <td class="id">{b.id}</td>
                <td class="optional">{b.endpoint}</td>
                <td>{b.status}</td>
                <td>
                  <progress
                    max={Math.max(1, b.request_counts.total)}
                    value={b.request_counts.completed + b.request_counts.failed}
                    aria-label={`Batch ${b.id}`}
                  />{" "}
                  {b.request_counts.completed} answered, {b.request_counts.failed} failed of {b.request_counts.total}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
