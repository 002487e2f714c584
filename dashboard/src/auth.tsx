// Sign-in: the person pastes an API key; it is checked with GET /v1/whoami and kept in
// this browser (the tab's session storage, or local storage when asked to remember it).
// The built files never hold a key.
import { useState, useSyncExternalStore, type FormEvent, type ReactNode } from "react";

import { api, ApiError, getApiKey, onApiKeyChange, setApiKey, signOutReason } from "./api/client";
import type { WhoAmI } from "./api/types";

/**
 * `#key=…` in the address (what `make demo` prints) signs this tab in: the key goes to the
 * tab's session storage and is removed from the address bar and its history entry before
 * anything renders. A wrong key is refused by the first call, which shows the sign-in form.
 */
export function takeKeyFromAddress(location: Location = window.location, history: History = window.history): boolean {
  const match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (!match) return false;
  history.replaceState(history.state, "", location.pathname + location.search);
  setApiKey(decodeURIComponent(match[1]), false);
  return true;
}

export function useApiKey(): string | null {
  return useSyncExternalStore(onApiKeyChange, getApiKey, () => null);
}

export function SignIn() {
  const [key, setKey] = useState("");
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | null>(signOutReason);
  const [busy, setBusy] = useState(false);

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
