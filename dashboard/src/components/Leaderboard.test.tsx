import { fireEvent, screen, waitFor } from "@testing-library/react";

import type { Leaderboard as LeaderboardAnswer } from "../api/types";
import { fakeLayout, renderWithApi, stubApi } from "../test/leadscoreApi";
import { Leaderboard, PAGE_SIZE } from "./Leaderboard";

const TOTAL = 10_250;

function page(url: URL): { body: LeaderboardAnswer } {
  const offset = Number(url.searchParams.get("offset"));
  const limit = Number(url.searchParams.get("limit"));
  const n = Math.max(0, Math.min(limit, TOTAL - offset));
  return {
    body: {
      total: TOTAL,
      offset,
      limit,
      leads: Array.from({ length: n }, (_, i) => ({
        rank: offset + i + 1,
        lead_id: `lead-${offset + i + 1}`,
        score: 99 - Math.floor((offset + i) / 120),
        probability: 0.5,
        grade: "B" as const,
        model_version: "20261127T164136Z-432b18",
        scored_at: new Date().toISOString(),
      })),
    },
  };
}

describe("<Leaderboard>", () => {
  beforeEach(() => fakeLayout(900, 360));
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllGlobals();
  });

  it("asks for pages of 100 and renders only the rows in view", async () => {
    const fetchMock = stubApi([["/v1/leads/top", page]]);
    renderWithApi(<Leaderboard height={360} />);
    await screen.findAllByTestId("leaderboard-row");
    expect(String(fetchMock.mock.calls[0][0])).toBe("/v1/leads/top?offset=0&limit=100");
    const rows = screen.getAllByTestId("leaderboard-row");
    // 360 px of 36 px rows + overscan: far fewer than the page's 100 rows are in the DOM.
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.length).toBeLessThan(PAGE_SIZE);
    expect(rows[0]).toHaveAttribute("data-lead-id", "lead-1");
    expect(rows[0]).toHaveTextContent("lead-1");
    expect(screen.getByTestId("leaderboard-range")).toHaveTextContent("1–100 of 10,250 leads");
    expect(screen.getByRole("spinbutton", { name: "Page number" })).toHaveValue(1);
    expect(screen.getByTestId("leaderboard")).toHaveTextContent("of 103");
    const link = screen.getAllByRole("link", { name: "lead-1" })[0];
    expect(link).toHaveAttribute("href", "/leads/lead-1");
  });

  it("pages on the server with Next and Prev", async () => {
    const fetchMock = stubApi([["/v1/leads/top", page]]);
    renderWithApi(<Leaderboard height={360} />);
    await screen.findAllByTestId("leaderboard-row");
    expect(screen.getByRole("button", { name: "Previous page" })).toBeDisabled();
    fireEvent.click(screen.getByRole("button", { name: "Next page" }));
    await waitFor(() => expect(screen.getAllByTestId("leaderboard-row")[0]).toHaveAttribute("data-lead-id", "lead-101"));
    expect(fetchMock.mock.calls.map((c) => String(c[0]))).toContain("/v1/leads/top?offset=100&limit=100");
    expect(screen.getByTestId("leaderboard-range")).toHaveTextContent("101–200 of 10,250 leads");
    fireEvent.click(screen.getByRole("button", { name: "Previous page" }));
    await waitFor(() => expect(screen.getAllByTestId("leaderboard-row")[0]).toHaveAttribute("data-lead-id", "lead-1"));
    // Jump straight to the last page (10,250 leads: page 103 holds ranks 10,201–10,250).
    fireEvent.change(screen.getByRole("spinbutton", { name: "Page number" }), { target: { value: "103" } });
    await waitFor(() => expect(screen.getAllByTestId("leaderboard-row")[0]).toHaveAttribute("data-lead-id", "lead-10201"));
    expect(fetchMock.mock.calls.map((c) => String(c[0]))).toContain("/v1/leads/top?offset=10200&limit=100");
    expect(screen.getByTestId("leaderboard-range")).toHaveTextContent("10,201–10,250 of 10,250 leads");
    expect(screen.getByRole("button", { name: "Next page" })).toBeDisabled();
  });

  it("keeps the rows (and the scroller) mounted while a live refresh is in flight", async () => {
    stubApi([["/v1/leads/top", page]]);
    const { client } = renderWithApi(<Leaderboard height={360} />);
    await screen.findAllByTestId("leaderboard-row");
    const scroller = screen.getByTestId("leaderboard").querySelector(".lb-scroll")!;
    void client.invalidateQueries({ queryKey: ["leaderboard"] });
    expect(screen.getAllByTestId("leaderboard-row").length).toBeGreaterThan(0);
    await waitFor(() => expect(client.isFetching()).toBe(0));
    expect(screen.getByTestId("leaderboard").querySelector(".lb-scroll")).toBe(scroller);
  });

  it("says what to do when no lead has a score yet", async () => {
    stubApi([["/v1/leads/top", { body: { total: 0, offset: 0, limit: 100, leads: [] } }]]);
    renderWithApi(<Leaderboard />);
    expect(await screen.findByText(/No lead has a score yet/)).toBeInTheDocument();
    expect(screen.getByText("make demo")).toBeInTheDocument();
    expect(screen.queryAllByTestId("leaderboard-row")).toHaveLength(0);
  });

  it("shows the API's error", async () => {
    stubApi([["/v1/leads/top", { status: 503, body: { error: { code: "unavailable", message: "Redis is down" } } }]]);
    renderWithApi(<Leaderboard />);
    expect(await screen.findByRole("alert")).toHaveTextContent("Redis is down");
  });
});
