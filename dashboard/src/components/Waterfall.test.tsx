import { render, screen, within } from "@testing-library/react";

import { scoreEvent } from "../test/leadscoreApi";
import { buildWaterfall, Waterfall } from "./Waterfall";

describe("buildWaterfall", () => {
  it("sums base + steps to 100 × probability, with 'other' holding the rest", () => {
    const event = scoreEvent();
    const model = buildWaterfall(event.base_score, event.reasons, event.probability);
    const total = model.base + model.steps.reduce((sum, s) => sum + s.contribution, 0);
    expect(total).toBeCloseTo(82.6681, 9);
    expect(model.final).toBeCloseTo(82.6681, 9);
    const other = model.steps.at(-1)!;
    expect(other.feature).toBe("other");
    // 82.6681 − 11.137 − (23.498 + 15.845 + 11.738 + 8.544 + 5.483)
    expect(other.contribution).toBeCloseTo(6.4231, 9);
    expect(other.end).toBeCloseTo(model.final, 9);
  });

  it("orders reasons by |contribution|, largest first, and chains running totals", () => {
    const model = buildWaterfall(
      20,
      [
        { feature: "a", label: "a", value: 1, contribution: 2 },
        { feature: "b", label: "b", value: 1, contribution: -9 },
        { feature: "c", label: "c", value: 1, contribution: 5 },
      ],
      0.18,
    );
    expect(model.steps.map((s) => s.feature)).toEqual(["b", "c", "a"]);
    expect(model.steps[0]).toMatchObject({ start: 20, end: 11 });
    expect(model.steps[1]).toMatchObject({ start: 11, end: 16 });
    expect(model.steps[2]).toMatchObject({ start: 16, end: 18 });
  });

  it("leaves out 'other' when the remainder is under 0.05 points", () => {
    const model = buildWaterfall(10, [{ feature: "a", label: "a", value: 1, contribution: 5.03 }], 0.1507);
    expect(model.steps.map((s) => s.feature)).toEqual(["a"]);
    const withOther = buildWaterfall(10, [{ feature: "a", label: "a", value: 1, contribution: 5.03 }], 0.1509);
    expect(withOther.steps.map((s) => s.feature)).toEqual(["a", "other"]);
    expect(withOther.steps[1].contribution).toBeCloseTo(0.06, 9);
  });
});

describe("<Waterfall>", () => {
  it("renders one row per reason plus 'other', contributions with one decimal", () => {
    const event = scoreEvent();
    render(<Waterfall baseScore={event.base_score} reasons={event.reasons} probability={event.probability} finalColor="#15803d" />);
    const rows = screen.getAllByTestId("waterfall-row");
    expect(rows.map((r) => r.dataset.feature)).toEqual([
      "behavioral_recent",
      "call_minutes",
      "interaction_recent",
      "engagement_recent",
      "content_recent",
      "other",
    ]);
    const numbers = rows.map((r) => within(r).getByTestId("waterfall-contribution").textContent);
    expect(numbers).toEqual(["+23.5", "+15.8", "+11.7", "+8.5", "+5.5", "+6.4"]);
    expect(screen.getByTestId("base-score")).toHaveTextContent(/^11\.1$/);
    expect(screen.getByTestId("waterfall-final")).toHaveTextContent(/^82\.7$/);
    // The chart: each bar starts where the previous one ended (scale 0…82.67 → 0…100 of the SVG).
    const rects = rows.map((r) => r.querySelector("rect")!);
    const x = rects.map((r) => Number(r.getAttribute("x")));
    const w = rects.map((r) => Number(r.getAttribute("width")));
    expect(x[0]).toBeCloseTo((11.137 / 82.6681) * 100, 6);
    for (let i = 1; i < rects.length; i++) expect(x[i]).toBeCloseTo(x[i - 1] + w[i - 1], 6);
    expect(x.at(-1)! + w.at(-1)!).toBeCloseTo(100, 6);
  });

  it("prints negative contributions with a real minus", () => {
    render(
      <Waterfall
        baseScore={30}
        reasons={[
          { feature: "recency_days", label: "last active 40 days ago", value: 40, contribution: -12.345 },
          { feature: "page_views", label: "3 page views", value: 3, contribution: 1.25 },
        ]}
        probability={0.2}
        finalColor="#94a3b8"
      />,
    );
    const rows = screen.getAllByTestId("waterfall-row");
    expect(rows[0]).toHaveAttribute("data-feature", "recency_days");
    expect(within(rows[0]).getByTestId("waterfall-contribution")).toHaveTextContent("−12.3");
    // 20 − 30 + 12.345 − 1.25 = 1.095 points left for the other features
    expect(rows.at(-1)).toHaveAttribute("data-feature", "other");
    expect(within(rows.at(-1)!).getByTestId("waterfall-contribution")).toHaveTextContent("+1.1");
  });
});
