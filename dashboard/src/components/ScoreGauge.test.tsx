import { render, screen } from "@testing-library/react";

import { GRADE_COLORS } from "../format";
import { arcPath, arcPoint, ScoreGauge } from "./ScoreGauge";

describe("<ScoreGauge>", () => {
  it("maps 0, 50 and 100 to the left end, the top and the right end", () => {
    const [x0, y0] = arcPoint(0);
    const [x50, y50] = arcPoint(50);
    const [x100, y100] = arcPoint(100);
    expect(x0).toBeCloseTo(20, 9);
    expect(y0).toBeCloseTo(100, 9);
    expect(x50).toBeCloseTo(100, 9);
    expect(y50).toBeCloseTo(20, 9);
    expect(x100).toBeCloseTo(180, 9);
    expect(y100).toBeCloseTo(100, 9);
    expect(arcPoint(140)).toEqual(arcPoint(100));
  });

  it("draws the score in the grade's colour with the number and an accessible label", () => {
    render(<ScoreGauge score={83} grade="A" />);
    expect(screen.getByTestId("lead-score")).toHaveTextContent("83");
    expect(screen.getByRole("img")).toHaveAttribute("aria-label", "Score 83 of 100, grade A");
    const arc = screen.getByTestId("gauge-arc");
    expect(arc).toHaveAttribute("stroke", GRADE_COLORS.A);
    expect(arc).toHaveAttribute("d", arcPath(83));
    expect(screen.getByText("80")).toBeInTheDocument(); // the A cut-off tick
  });

  it("draws no arc for a score of 0", () => {
    render(<ScoreGauge score={0} grade="D" />);
    expect(screen.queryByTestId("gauge-arc")).toBeNull();
    expect(screen.getByTestId("lead-score")).toHaveTextContent("0");
  });
});
