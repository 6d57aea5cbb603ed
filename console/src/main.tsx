import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { Api } from "./api.ts";
import { useRoute } from "./route.ts";
import { Chat } from "./views/chat.tsx";
import { Collections } from "./views/collections.tsx";
import { DocumentView } from "./views/document-view.tsx";
import { Documents } from "./views/documents.tsx";
import { Jobs } from "./views/jobs.tsx";
import { Search } from "./views/search.tsx";
import { SignIn } from "./views/sign-in.tsx";
import "./styles.css";

const KEY_STORAGE = "pgrag.apiKey";

/** The navigation: each section's view, link and name. */
const SECTIONS = [
  ["collections", "#/", "Collections"],
  ["search", "#/search", "Search"],
  ["chat", "#/chat", "Chat"],
  ["jobs", "#/jobs", "Jobs"],
] as const;

/** The console: signed in with an API key (kept for this tab only), one view per route. */
function App() {
  const [key, setKey] = useState<string | null>(() => sessionStorage.getItem(KEY_STORAGE));
  const [notice, setNotice] = useState<string | null>(null);
  const route = useRoute();
  const api = useMemo(
    () =>
      key
        ? new Api(key, (message) => {
            // A wrong or revoked key: nothing of what it showed stays on screen.
            sessionStorage.removeItem(KEY_STORAGE);
            setKey(null);
            setNotice(`Signed out: the key was refused (${message}).`);
          })
        : null,
    [key],
  );
  useEffect(() => {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
  }, [key]);

  if (!api) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(signedIn) => {
          setNotice(null);
          setKey(signedIn);
          location.hash = "#/";
        }}
      />
    );
  }
  return (
    <div class="shell">
      <header class="bar">
        <a class="brand" href="#/">
          pgrag
        </a>
        <nav aria-label="Sections">
          {SECTIONS.map(([view, href, label]) => (
            <a key={view} href={href} aria-current={route.view === view ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <button
          type="button"
          class="link"
          onClick={() => {
            sessionStorage.removeItem(KEY_STORAGE);
            setKey(null);
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        {route.view === "collections" && <Collections api={api} />}
        {route.view === "chat" && <Chat api={api} />}
        {route.view === "search" && <Search api={api} />}
        {route.view === "jobs" && <Jobs api={api} />}
        {route.view === "documents" && <Documents api={api} collection={route.collection} />}
        {route.view === "document" && (
          <DocumentView api={api} collection={route.collection} externalId={route.externalId} />
        )}
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app") as HTMLElement);
