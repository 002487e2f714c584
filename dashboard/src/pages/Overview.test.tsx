import { screen } from "@testing-library/react";

import { fakeLayout, renderWithApi, stubApi } from "../test/leadscoreApi";
import { Overview } from "./Overview";

const performance = {
  model: { version: "v1", champion: "v1" },
  stream: { totals: { events: 16821, scores: 4451 }, rates_per_s: { events: 48.84, scores: 12.03 }, rate_window_s: 59.4, leads_scored: 950 },
  api: {},
  feed: {},
};
const top = { total: 2, offset: 0, limit: 100, leads: [
  { rank: 1, lead_id: "lead-a", score: 91, probability: 0.91, grade: "A", model_version: "v1", scored_at: "2026-11-27T16:00:00Z" },
  { rank: 2, lead_id: "lead-b", score: 55, probability: 0.55, grade: "C", model_version: "v1", scored_at: "2026-11-27T16:00:00Z" },
] };

describe("<Overview>", () => {
  beforeEach(() => fakeLayout(900, 480));
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllGlobals();
  });

  it("shows grade counts, rates and the leaderboard", async () => {
    stubApi([
      ["/v1/leads/distribution", { body: { total: 2, bins: [{ from: 0, to: 50, count: 1 }, { from: 50, to: 100, count: 1 }], grades: { A: 1, B: 0, C: 1, D: 0 }, thresholds: { A: 80, B: 60, C: 40 } } }],
      ["/v1/metrics/performance", { body: performance }],
      ["/v1/leads/top", { body: top }],
    ]);
    renderWithApi(<Overview />);
    expect(await screen.findByText("lead-a")).toBeInTheDocument();
    expect(await screen.findByTestId("grade-count-A")).toHaveTextContent(/^1$/);
    expect(screen.getByTestId("grade-count-B")).toHaveTextContent(/^0$/);
    expect(screen.getByTestId("grade-count-C")).toHaveTextContent(/^1$/);
    expect(screen.getByTestId("grade-count-D")).toHaveTextContent(/^0$/);
    expect(await screen.findByText("48.8")).toHaveAttribute("data-testid", "stat-events-rate");
    expect(screen.getByTestId("stat-scores-rate")).toHaveTextContent("12.0");
    expect(screen.getAllByTestId("leaderboard-row").map((r) => r.dataset.leadId)).toEqual(["lead-a", "lead-b"]);
    expect(screen.getByTestId("newest-changes")).toBeInTheDocument();
  });

  it("survives a missing distribution endpoint (404): an error in its card, dashes for grades", async () => {
    stubApi([
      ["/v1/metrics/performance", { body: performance }],
      ["/v1/leads/top", { body: top }],
    ]);
    renderWithApi(<Overview />);
    expect(await screen.findByRole("alert")).toHaveTextContent("Error 404");
    expect(screen.getByTestId("grade-count-A")).toHaveTextContent("—");
    expect(await screen.findByText("lead-a")).toBeInTheDocument();
  });

  it("tells the user to start producers or the demo when nothing is scored", async () => {
    stubApi([
      ["/v1/leads/distribution", { body: { total: 0, bins: [], grades: { A: 0, B: 0, C: 0, D: 0 } } }],
      ["/v1/metrics/performance", { body: { ...performance, stream: { totals: {}, rates_per_s: {}, rate_window_s: 60, leads_scored: 0 } } }],
      ["/v1/leads/top", { body: { total: 0, offset: 0, limit: 100, leads: [] } }],
    ]);
    renderWithApi(<Overview />);
    expect(await screen.findByText(/No lead has a score yet/)).toBeInTheDocument();
    expect(await screen.findByText(/No scores yet/)).toBeInTheDocument();
  });
});
