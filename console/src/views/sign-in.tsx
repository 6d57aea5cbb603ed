import { useEffect, useState } from "preact/hooks";
import { Api, ApiError, fetchInfo } from "../api.ts";
import { Message } from "../controls.tsx";

/** Sign-in with an API key; in embedded mode on this machine, the local key is offered. */
export function SignIn(props: { notice: string | null; onSignedIn: (key: string) => void }) {
  const [key, setKey] = useState("");
  const [localKey, setLocalKey] = useState<string | undefined>();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    fetchInfo()
      .then((info) => setLocalKey(info.local_api_key))
      .catch(() => undefined);
  }, []);

  const signIn = async (candidate: string) => {
    setBusy(true);
    setError(null);
    try {
      // A key is good if it can list the collections.
      await new Api(candidate, () => undefined).request("GET", "/v1/collections");
      props.onSignedIn(candidate);
    } catch (failure) {
      setError(
        failure instanceof ApiError && failure.status === 401
          ? "That key is not valid (wrong, or revoked)."
          : `Cannot sign in: ${(failure as Error).message}`,
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="sign-in">
      <h1>pgrag console</h1>
      {props.notice && (
        <p class="notice" role="alert">
          {props.notice}
        </p>
      )}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void signIn(key.trim());
        }}
      >
        <label for="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autocomplete="off"
          value={key}
          onInput={(event) => setKey(event.currentTarget.value)}
          required
        />
        <button type="submit" disabled={busy || key.trim() === ""}>
          Sign in
        </button>
      </form>
      {localKey && (
        <p>
          <button type="button" class="secondary" disabled={busy} onClick={() => void signIn(localKey)}>
            Use this machine's key (embedded mode)
          </button>
        </p>
      )}
      <Message kind="alert" text={error} />
    </main>
  );
}
