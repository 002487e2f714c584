// Test helpers for the Trends, Models and Batch pages: a fetch stub routed by method and
// path (JSON or text answers, every call recorded), and a render with a fresh QueryClient.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactElement } from "react";
import { MemoryRouter } from "react-router-dom";

import type { WhoAmI } from "../api/types";

export interface Call {
  method: string;
  path: string;
  url: URL;
  headers: Record<string, string>;
  body: BodyInit | null | undefined;
}

type Reply = { status?: number; body?: unknown; text?: string; contentType?: string };
type Handler = Reply | ((call: Call, n: number) => Reply);

/**
 * Stubs `fetch` with routes "METHOD /path" (or "/path" for GET); the query string is not
 * part of the match. Unmatched calls answer 404 in the API's error shape.
 */
export function routeApi(routes: Record<string, Handler>) {
  const calls: Call[] = [];
  const counts = new Map<string, number>();
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), "http://test.local");
    const method = (init?.method ?? "GET").toUpperCase();
    const call: Call = { method, path: url.pathname, url, headers: (init?.headers ?? {}) as Record<string, string>, body: init?.body };
    calls.push(call);
    const key = routes[`${method} ${url.pathname}`] !== undefined ? `${method} ${url.pathname}` : method === "GET" ? url.pathname : "";
    const handler = routes[key];
    if (handler === undefined) {
      return new Response(JSON.stringify({ error: { code: "not_found", message: `no route ${method} ${url.pathname}` } }), {
        status: 404,
        headers: { "Content-Type": "application/json" },
      });
    }
    const n = counts.get(key) ?? 0;
    counts.set(key, n + 1);
    const reply = typeof handler === "function" ? handler(call, n) : handler;
    const status = reply.status ?? 200;
    if (reply.text !== undefined) {
      return new Response(reply.text, { status, headers: { "Content-Type": reply.contentType ?? "text/csv" } });
    }
    return new Response(JSON.stringify(reply.body ?? {}), { status, headers: { "Content-Type": "application/json" } });
  });
  vi.stubGlobal("fetch", fetchMock);
  // Recharts' ResponsiveContainer needs a ResizeObserver, which jsdom lacks.
  if (!("ResizeObserver" in globalThis)) {
    vi.stubGlobal(
      "ResizeObserver",
      class {
        observe() {}
        unobserve() {}
        disconnect() {}
      },
    );
  }
  return { calls, fetchMock };
}

export function whoami(scope: "read" | "score" | "admin"): WhoAmI {
  return {
    id: "k1",
    name: `${scope}-key`,
    scopes: [scope],
    allows: { read: true, score: scope !== "read", admin: scope === "admin" },
  };
}

export function renderPage(ui: ReactElement, path = "/") {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const result = render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>{ui}</MemoryRouter>
    </QueryClientProvider>,
  );
  return { ...result, client };
}
