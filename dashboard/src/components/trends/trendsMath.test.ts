import type { TrendBucket } from "../../api/types";
import { binStats, conversionRows, MIN_OUTCOMES, trimLeadingEmpty } from "./trendsMath";

function bucket(start: string, scores: number, outcomes = 0): TrendBucket {
  return {
    start,
    scores,
    bins: [scores, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    grades: { A: 0, B: 0, C: 0, D: scores },
    families: {},
    fit: null,
    engagement: null,
    outcomes: { A: { n: outcomes, converted: 0, rate: null } },
  };
}

describe("conversionRows", () => {
  it("computes each grade's rate and its lift over the overall rate", () => {
    const { rows, overall } = conversionRows({
      A: { n: 40, converted: 20, rate: 0.5 },
      B: { n: 40, converted: 10, rate: 0.25 },
      C: { n: 10, converted: 1, rate: 0.1 },
      D: { n: 110, converted: 9, rate: 0.0818 },
    });
    expect(overall).toEqual({ n: 200, converted: 40, rate: 0.2 });
    const [a, b, c, d] = rows;
    expect(a.rate).toBeCloseTo(0.5);
    expect(a.lift).toBeCloseTo(2.5);
    expect(b.lift).toBeCloseTo(1.25);
    expect(c.lift).toBeCloseTo(0.5);
    expect(d.lift).toBeCloseTo(9 / 110 / 0.2);
    // Under MIN_OUTCOMES the numbers are kept but flagged.
    expect(MIN_OUTCOMES).toBe(20);
    expect(rows.map((r) => r.enough)).toEqual([true, true, false, true]);
  });

  it("has no rate or lift without outcomes, and no lift when nothing converted", () => {
    const empty = conversionRows({});
    expect(empty.overall).toEqual({ n: 0, converted: 0, rate: null });
    expect(empty.rows.every((r) => r.rate === null && r.lift === null && !r.enough)).toBe(true);
    const none = conversionRows({ A: { n: 30, converted: 0, rate: 0 } });
    expect(none.rows[0].rate).toBe(0);
    expect(none.rows[0].lift).toBeNull();
  });
});

describe("binStats", () => {
  it("estimates the mean from bin midpoints and interpolates the median", () => {
    // 10 scores in 0-9, 10 in 10-19: the median is the border, 10.
    const stats = binStats([10, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(stats.n).toBe(20);
    expect(stats.mean).toBeCloseTo(10);
    expect(stats.median).toBeCloseTo(10);
    // All in the top bin: the median is inside 90-100.
    expect(binStats([0, 0, 0, 0, 0, 0, 0, 0, 0, 4]).median).toBeCloseTo(95);
  });
  it("has no mean or median for an empty bucket", () => {
    expect(binStats(new Array(10).fill(0))).toEqual({ n: 0, mean: null, median: null });
  });
});

describe("trimLeadingEmpty", () => {
  it("starts at the first bucket with scores or outcomes", () => {
    const buckets = [bucket("2026-01-01T00:00:00Z", 0), bucket("2026-01-02T00:00:00Z", 0, 2), bucket("2026-01-03T00:00:00Z", 5)];
    expect(trimLeadingEmpty(buckets).map((b) => b.start)).toEqual(["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]);
    expect(trimLeadingEmpty([bucket("2026-01-01T00:00:00Z", 0)])).toEqual([]);
  });
});
