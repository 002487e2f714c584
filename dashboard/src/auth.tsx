// Sign-in: the person pastes an API key; it is checked with GET /v1/whoami and kept in
// this browser (the tab's session storage, or local storage when asked to remember it).
// The built files never hold a key.
import { useEffect, useState, useSyncExternalStore, type FormEvent, type ReactNode } from "react";

import { api, ApiError, getApiKey, onApiKeyChange, setApiKey } from "./api/client";
import type { WhoAmI } from "./api/types";

export function useApiKey(): string | null {
  return useSyncExternalStore(onApiKeyChange, getApiKey, () => null);
}

export function SignIn() {
  const [key, setKey] = useState("");
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    // `#key=…` in the address (what `make demo` prints) signs in once and is then removed
    // from the address bar and history.
    const match = /(?:^#|&)key=([^&]+)/.exec(window.location.hash);
    if (match) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
      void submit(decodeURIComponent(match[1]), false);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  async function submit(candidate: string, keep: boolean) {
    setBusy(true);
    setError(null);
    try {
      await api<WhoAmI>("/v1/whoami", { key: candidate.trim() });
      setApiKey(candidate.trim(), keep);
    } catch (err) {
      const e = err as ApiError;
      setError(e.status === 401 ? "This key is not known or was revoked." : e.message);
    } finally {
      setBusy(false);
    }
  }

  function onSubmit(event: FormEvent) {
    event.preventDefault();
    if (key.trim()) void submit(key, remember);
  }

  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={onSubmit} aria-label="Sign in">
        <h1>leadscore</h1>
        <p className="muted">
          Paste an API key. A <code>read</code> key shows scores and models; batch scoring needs <code>score</code>,
          model changes need <code>admin</code>. Make one with <code>leadscore keys create --name dashboard --scope read</code>.
        </p>
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          value={key}
          onChange={(e) => setKey(e.target.value)}
          placeholder="lsk_…"
          autoFocus
        />
        <label className="inline">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.target.checked)} /> Remember on this
          device
        </label>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy || !key.trim()}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

export function RequireKey({ children }: { children: ReactNode }) {
  const key = useApiKey();
  return key ? <>{children}</> : <SignIn />;
}
