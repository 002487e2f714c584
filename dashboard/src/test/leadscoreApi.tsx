// Test helpers for the Overview and Lead views: a fetch stub routed by path, a render with
// a fresh QueryClient and router, and a real score event (from the running stack) as fixture.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactElement } from "react";
import { MemoryRouter, Route, Routes } from "react-router-dom";

import type { ScoreEvent } from "../api/types";

type Answer = { status?: number; body: unknown } | ((url: URL) => { status?: number; body: unknown });

/** Stubs `fetch`: the first route whose path prefix matches answers (else 404). Returns the mock. */
export function stubApi(routes: [string, Answer][]) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL) => {
    const url = new URL(String(input), "http://test.local");
    for (const [prefix, answer] of routes) {
      if (url.pathname === prefix || (prefix.endsWith("*") && url.pathname.startsWith(prefix.slice(0, -1)))) {
        const { status = 200, body } = typeof answer === "function" ? answer(url) : answer;
        return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
      }
    }
    return new Response(JSON.stringify({ error: { code: "not_found", message: `no route ${url.pathname}` } }), { status: 404 });
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

/** jsdom has no layout and no ResizeObserver: give elements a size so virtual lists and charts render. */
export function fakeLayout(width = 900, height = 480) {
  vi.stubGlobal(
    "ResizeObserver",
    class {
      observe() {}
      unobserve() {}
      disconnect() {}
    },
  );
  vi.spyOn(HTMLElement.prototype, "clientHeight", "get").mockReturnValue(height);
  vi.spyOn(HTMLElement.prototype, "clientWidth", "get").mockReturnValue(width);
  vi.spyOn(HTMLElement.prototype, "offsetHeight", "get").mockReturnValue(height);
  vi.spyOn(HTMLElement.prototype, "offsetWidth", "get").mockReturnValue(width);
}

export function renderWithApi(ui: ReactElement, { path = "/", route = "/" }: { path?: string; route?: string } = {}) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const result = render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <Routes>
          <Route path={route} element={ui} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return { ...result, client };
}

export function scoreEvent(overrides: Partial<ScoreEvent> = {}): ScoreEvent {
  return {
    type: "lead.scored",
    id: "sc_8b7310dff0982258f5ccf7f7",
    lead_id: "sim-6b09b2d7-0-000102",
    score: 83,
    probability: 0.826681,
    grade: "A",
    previous_score: 77,
    previous_grade: "B",
    model_version: "20261127T164136Z-432b18",
    base_score: 11.137,
    reasons: [
      { feature: "behavioral_recent", label: "web and email activity recently (76.6, 7-day half-life)", value: 76.58, contribution: 23.498 },
      { feature: "call_minutes", label: "26 minutes on calls", value: 25.985, contribution: 15.845 },
      { feature: "interaction_recent", label: "social activity and referrals recently (1.8)", value: 1.82, contribution: 11.738 },
      { feature: "engagement_recent", label: "calls, meetings and demos recently (6.2)", value: 6.21, contribution: 8.544 },
      { feature: "content_recent", label: "content downloads recently (2.9)", value: 2.86, contribution: 5.483 },
    ],
    changes: [
      { feature: "call_minutes", label: "26 minutes on calls", contribution: 15.845, previous_contribution: 6.09, delta: 9.755 },
      { feature: "distinct_assets", label: "2 different assets downloaded", contribution: -3.841, previous_contribution: 0.141, delta: -3.982 },
    ],
    components: {
      fit: 8.246,
      engagement: 63.286,
      families: { behavioral: 28.406, content: 4.049, demographic: 8.715, engagement: 24.272, interaction: 9.098, quality: -0.469, temporal: -2.54 },
    },
    cause_event_id: "sim-6b09b2d7-0-000102.97",
    cause_event_type: "lead.call_logged",
    event_time: "2026-11-10T22:58:05.417000Z",
    scored_at: "2026-11-27T16:43:14.006824Z",
    experiment: null,
    arm: null,
    ...overrides,
  };
}
