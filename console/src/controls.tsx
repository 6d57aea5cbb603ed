import { useEffect, useState } from "preact/hooks";
import type { Api, Collection, DocumentSummary } from "./api.ts";

/** A labelled select of `[value, label]` options. */
export function Select(props: {
  id: string;
  label: string;
  value: string;
  options: readonly (readonly [string, string])[];
  onChange: (value: string) => void;
  disabled?: boolean;
}) {
  return (
    <>
      <label for={props.id}>{props.label}</label>
      <select
        id={props.id}
        value={props.value}
        disabled={props.disabled}
        onChange={(event) => props.onChange(event.currentTarget.value)}
      >
        {props.options.map(([value, label]) => (
          <option key={value} value={value}>
            {label}
          </option>
        ))}
      </select>
    </>
  );
}

/** A labelled whole number between `min` and `max`. */
export function NumberField(props: {
  id: string;
  label: string;
  value: number;
  min: number;
  max: number;
  onChange: (value: number) => void;
}) {
  return (
    <>
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        type="number"
        min={props.min}
        max={props.max}
        value={props.value}
        onInput={(event) => props.onChange(Number(event.currentTarget.value))}
      />
    </>
  );
}

/** The tenant's collections, and the one chosen (the first, until the user picks another). */
export function useCollectionChoice(api: Api) {
  const [collections, setCollections] = useState<Collection[]>([]);
  const [collection, setCollection] = useState("");
  useEffect(() => {
    void api.request<{ collections: Collection[] }>("GET", "/v1/collections").then((body) => {
      setCollections(body.collections);
      setCollection((current) => current || body.collections[0]?.name || "");
    });
  }, [api]);
  const options = collections.map((c) => [c.name, c.name] as const);
  return { collection, setCollection, options };
}

/** A message about the last action: `status` for outcomes, `alert` for errors. */
export function Message({ text, kind = "status" }: { text: string | null; kind?: "status" | "alert" }) {
  if (!text) return null;
  return (
    <p class={kind === "alert" ? "error" : "notice"} role={kind}>
      {text}
    </p>
  );
}

/** A document's status as a person reads it: a pending one by its stage (queued, parsing, embedding), with the reason of a failure. */
export function DocumentState({ document }: { document: Pick<DocumentSummary, "status" | "stage" | "error"> }) {
  const label =
    document.status === "pending"
      ? (document.stage ?? "queued")
      : document.status === "needs_ocr"
        ? "needs OCR"
        : document.status;
  return (
    <>
      <span class={`status ${document.status}`}>{label}</span>
      {document.error && <span class="reason"> — {document.error}</span>}
    </>
  );
}
