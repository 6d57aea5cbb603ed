/** The platform's HTTP API as the console uses it: the key on every request, errors as `ApiError`s. */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Collection {
  name: string;
  language: string;
  chunking: { max_tokens: number; overlap_tokens: number; min_tokens: number };
  created_at: string;
}

export type DocumentStatus = "pending" | "ready" | "failed" | "needs_ocr";

export interface DocumentSummary {
  id: string;
  external_id: string;
  title: string | null;
  content_type: string;
  file_name: string | null;
  status: DocumentStatus;
  /** While pending: null (queued), parsing or embedding. */
  stage: "parsing" | "embedding" | null;
  error: string | null;
  chunk_count: number;
  version: number;
  updated_at: string;
  metadata: Record<string, unknown>;
}

export interface Location {
  file_name: string | null;
  page_start: number | null;
  page_end: number | null;
  page_unit: "page" | "slide" | null;
  label: string;
}

export interface ChunkJson {
  id: string;
  ordinal: number;
  content: string;
  heading_path: string[];
  location: Location;
  char_start: number;
  char_end: number;
  token_count: number;
}

export interface Info {
  inference: "dev" | "external";
  chat_model: string;
  local_api_key?: string;
}

/** Called when the key is refused (wrong or revoked): the console signs out and says why. */
type OnUnauthorized = (message: string) => void;

export class Api {
  constructor(
    readonly key: string,
    private readonly onUnauthorized: OnUnauthorized,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const init: RequestInit = { method, headers: { Authorization: `Bearer ${this.key}`, ...headers } };
    if (body instanceof FormData || body instanceof Blob) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    if (!response.ok) throw await this.errorOf(response);
    return (response.status === 204 ? undefined : await response.json()) as T;
  }

  /** The response itself, for bodies that are not JSON (a document's original). */
  async raw(path: string): Promise<Response> {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${this.key}` } });
    if (!response.ok) throw await this.errorOf(response);
    return response;
  }

  /** A PUT whose upload progress is reported (fetch cannot report it): one file, as its own document. */
  upload(path: string, file: File, onProgress: (fraction: number) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", path);
      xhr.setRequestHeader("Authorization", `Bearer ${this.key}`);
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.setRequestHeader("Content-Disposition", `attachment; filename*=UTF-8''${encodeURIComponent(file.name)}`);
      xhr.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
      xhr.onerror = () => reject(new ApiError(0, "network", "the upload was interrupted"));
      xhr.onload = () => {
        const body = safeJson(xhr.responseText) as { error?: { code: string; message: string } } | undefined;
        if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
        const error = new ApiError(xhr.status, body?.error?.code ?? "error", body?.error?.message ?? xhr.statusText);
        if (xhr.status === 401) this.onUnauthorized(error.message);
        reject(error);
      };
      xhr.send(file);
    });
  }

  /** The error a failed response carries (a 401 signs out). */
  async errorOf(response: Response): Promise<ApiError> {
    const body = safeJson(await response.text()) as { error?: { code: string; message: string } } | undefined;
    const error = new ApiError(
      response.status,
      body?.error?.code ?? "error",
      body?.error?.message ?? `${response.status} ${response.statusText}`,
    );
    if (response.status === 401) this.onUnauthorized(error.message);
    return error;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Public, no key: which backend answers, and in embedded mode on this machine, the local key. */
export async function fetchInfo(): Promise<Info> {
  return (await fetch("/v1/info")).json() as Promise<Info>;
}

export const encode = encodeURIComponent;
