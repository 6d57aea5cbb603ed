import { useEffect, useState } from "preact/hooks";

/** Where the console is, from the URL's hash: reloadable and shareable, no server routes needed. */
export type Route =
  | { view: "collections" }
  | { view: "chat" }
  | { view: "search" }
  | { view: "jobs" }
  | { view: "documents"; collection: string }
  | { view: "document"; collection: string; externalId: string };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodePart);
  if (parts[0] === "chat") return { view: "chat" };
  if (parts[0] === "search") return { view: "search" };
  if (parts[0] === "jobs") return { view: "jobs" };
  if (parts[0] === "c" && parts[1]) {
    if (parts[2] === "d" && parts[3])
      return { view: "document", collection: parts[1], externalId: parts.slice(3).join("/") };
    return { view: "documents", collection: parts[1] };
  }
  return { view: "collections" };
}

/** A hash part as written; a malformed escape (a hand-edited URL) is taken as it is rather than breaking the page. */
function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

export const collectionHref = (name: string) => `#/c/${encodeURIComponent(name)}`;
export const documentHref = (collection: string, externalId: string) =>
  `#/c/${encodeURIComponent(collection)}/d/${encodeURIComponent(externalId)}`;

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}
