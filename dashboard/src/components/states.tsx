// Loading, error and empty states, the same everywhere.
import type { ReactNode } from "react";

import { ApiError } from "../api/client";

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <div className="state loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden /> {what}…
    </div>
  );
}

export function ErrorState({ error, retry }: { error: unknown; retry?: () => void }) {
  const e = error as ApiError;
  const hint =
    e?.status === 403
      ? " Your key does not allow this; ask for a key with the scope named above."
      : e?.status === 0
        ? " Is `leadscore api` running?"
        : "";
  return (
    <div className="state error" role="alert">
      <strong>{e?.status ? `Error ${e.status}` : "Error"}:</strong> {e?.message ?? String(error)}
      {hint}
      {retry && (
        <button type="button" className="link" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>;
}

/** Renders the error/loading state of a query, else its children. */
export function QueryState<T>({
  query,
  children,
  what,
}: {
  query: { data: T | undefined; error: unknown; isLoading: boolean; refetch: () => unknown };
  children: (data: T) => ReactNode;
  what?: string;
}) {
  if (query.error && query.data === undefined) return <ErrorState error={query.error} retry={() => query.refetch()} />;
  if (query.isLoading || query.data === undefined) return <Loading what={what} />;
  return <>{children(query.data)}</>;
}
