import { configure, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { Grade, TrendBucket } from "../api/types";
import { renderPage, routeApi } from "../test/pagesApi";
import { TrendsView } from "./Trends";

// Pages with charts render slowly in jsdom on a busy machine: give each test room.
vi.setConfig({ testTimeout: 20_000 });
configure({ asyncUtilTimeout: 5_000 });

function bucket(start: string, grades: Record<Grade, number>): TrendBucket {
  const scores = grades.A + grades.B + grades.C + grades.D;
  return {
    start,
    scores,
    bins: [grades.D, 0, 0, grades.C, 0, grades.B, 0, grades.A, 0, 0],
    grades,
    families: scores ? { behavioral: 4.2, demographic: 1.1, quality: -0.3 } : {},
    fit: scores ? 2 : null,
    engagement: scores ? 5 : null,
    outcomes: { A: { n: 0, converted: 0, rate: null } },
  };
}

const answer = {
  bucket_s: 86400,
  since: "2026-11-01T00:00:00Z",
  until: "2026-11-03T00:00:00Z",
  buckets: [bucket("2026-11-01T00:00:00Z", { A: 2, B: 3, C: 5, D: 10 }), bucket("2026-11-02T00:00:00Z", { A: 1, B: 1, C: 1, D: 1 })],
  totals: {
    scores: 24,
    outcomes: {
      A: { n: 25, converted: 15, rate: 0.6, lift: 3 },
      B: { n: 5, converted: 2, rate: 0.4, lift: 2 },
      C: { n: 30, converted: 3, rate: 0.1, lift: 0.5 },
      D: { n: 40, converted: 0, rate: 0, lift: 0 },
    },
    overall: { n: 100, converted: 20, rate: 0.2 },
  },
};

describe("TrendsView", () => {
  it("shows conversion and lift per grade, and says when a grade has too few outcomes", async () => {
    routeApi({ "/v1/trends": { body: answer } });
    renderPage(<TrendsView />);
    const table = await screen.findByTestId("conversion-table");
    const a = within(table).getByTestId("conversion-A");
    expect(a).toHaveTextContent("25");
    expect(a).toHaveTextContent("60.0 %");
    expect(a).toHaveTextContent("3.00×");
    const b = within(table).getByTestId("conversion-B");
    expect(b).toHaveTextContent("not enough outcomes");
    expect(within(table).getByTestId("conversion-C")).toHaveTextContent("0.50×");
    expect(within(table).getByTestId("conversion-D")).toHaveTextContent("0.00×");
    expect(table).toHaveTextContent("20.0 %"); // overall
    expect(screen.getByText("Scores published in range").nextSibling).toHaveTextContent("24");
    // Each chart says what it counts.
    expect(screen.getByText(/by the time of the event that caused them/)).toBeInTheDocument();
  });

  it("shows an empty state when the range holds no scores and no outcomes", async () => {
    routeApi({
      "/v1/trends": {
        body: {
          ...answer,
          buckets: [bucket("2026-11-01T00:00:00Z", { A: 0, B: 0, C: 0, D: 0 })],
          totals: { scores: 0, outcomes: {}, overall: { n: 0, converted: 0, rate: null } },
        },
      },
    });
    renderPage(<TrendsView />);
    expect(await screen.findByText(/No scores or outcomes in this range/)).toBeInTheDocument();
    expect(screen.queryByTestId("conversion-table")).not.toBeInTheDocument();
  });

  it("says plainly when the API has no trends route (404)", async () => {
    routeApi({});
    renderPage(<TrendsView />);
    expect(await screen.findByRole("alert")).toHaveTextContent("Trends are not available from this API yet");
  });

  it("asks for the chosen bucket and a range ending at the newest data", async () => {
    const { calls } = routeApi({ "/v1/trends": { body: answer } });
    renderPage(<TrendsView />);
    await screen.findByTestId("conversion-table");
    expect(calls[0].url.searchParams.get("bucket")).toBe("day");
    expect(calls[0].url.searchParams.get("since")).toBeNull();
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "Week" }));
    await user.click(screen.getByRole("button", { name: "Last 7 days" }));
    await vi.waitFor(() => {
      const last = calls.at(-1)!.url.searchParams;
      expect(last.get("bucket")).toBe("week");
      expect(last.get("since")).toBe("2026-10-27T00:00:00Z");
    });
  });
});
