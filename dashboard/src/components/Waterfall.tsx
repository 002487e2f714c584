// The score's explanation as a waterfall: base score, each reason's points (largest first),
// "other factors" (the rest of the 53 features), and the final 100 × probability.
import type { Reason } from "../api/types";
import { fmtNum, fmtSigned } from "../format";
import "./lead.css";

export interface WaterfallStep {
  feature: string;
  label: string;
  contribution: number;
  /** Running total before and after this step, in score points. */
  start: number;
  end: number;
}

export interface WaterfallModel {
  base: number;
  steps: WaterfallStep[];
  final: number;
}

/** Below this many points the remainder is rounding, not a factor worth a row. */
export const OTHER_MIN_POINTS = 0.05;

/**
 * The waterfall of a score event: `base + Σ steps = final = 100 × probability`, exactly.
 * Reasons come largest |contribution| first; "other" holds what the shown reasons leave out.
 */
export function buildWaterfall(baseScore: number, reasons: Reason[], probability: number): WaterfallModel {
  const final = 100 * probability;
  const sorted = [...reasons].sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
  const steps: WaterfallStep[] = [];
  let running = baseScore;
  for (const reason of sorted) {
    steps.push({ feature: reason.feature, label: reason.label, contribution: reason.contribution, start: running, end: running + reason.contribution });
    running += reason.contribution;
  }
  const other = final - running;
  if (Math.abs(other) >= OTHER_MIN_POINTS) {
    steps.push({ feature: "other", label: "Other factors (the remaining features together)", contribution: other, start: running, end: final });
  }
  return { base: baseScore, steps, final };
}

const GRID = [10, 20, 30, 40, 50, 60, 70, 80, 90];

/** One row's bar as SVG on the shared scale lo…hi (stretched to the cell's width). */
function Bar({ from, to, lo, hi, className, color }: { from: number; to: number; lo: number; hi: number; className: string; color?: string }) {
  const span = hi - lo || 1;
  const x = ((Math.min(from, to) - lo) / span) * 100;
  const width = Math.max(0.4, (Math.abs(to - from) / span) * 100);
  return (
    <svg className="wf-track" viewBox="0 0 100 16" preserveAspectRatio="none" aria-hidden>
      {GRID.map((g) => (
        <line key={g} x1={g} x2={g} y1={0} y2={16} stroke="#eef2f7" strokeWidth={0.3} vectorEffect="non-scaling-stroke" />
      ))}
      <rect className={`wf-bar ${className}`} x={x} width={width} y={1} height={14} rx={0.6} fill={color}>
        <title>{`${fmtNum(from)} → ${fmtNum(to)}`}</title>
      </rect>
    </svg>
  );
}

/** A table whose middle column draws the waterfall: each row's bar floats from its running total. */
export function Waterfall({ baseScore, reasons, probability, finalColor }: { baseScore: number; reasons: Reason[]; probability: number; finalColor: string }) {
  const model = buildWaterfall(baseScore, reasons, probability);
  const totals = [0, model.base, model.final, ...model.steps.flatMap((s) => [s.start, s.end])];
  const lo = Math.min(0, ...totals);
  const hi = Math.max(...totals, 10);
  return (
    <table className="waterfall" data-testid="waterfall">
      <caption className="sr-only">How the score is built: base score, then each factor's points, then the final score</caption>
      <thead>
        <tr>
          <th scope="col">Factor</th>
          <th scope="col" className="wf-chart-head">
            <span>{fmtNum(lo, 0)}</span>
            <span>running score</span>
            <span>{fmtNum(hi, 0)}</span>
          </th>
          <th scope="col" className="num">Points</th>
        </tr>
      </thead>
      <tbody>
        <tr className="wf-base">
          <th scope="row" title="The score of a lead with no reason at all: the model's average over its training data">
            Base score
          </th>
          <td>
            <Bar from={0} to={model.base} lo={lo} hi={hi} className="base" />
          </td>
          <td className="num" data-testid="base-score">
            {fmtNum(model.base)}
          </td>
        </tr>
        {model.steps.map((step) => (
          <tr key={step.feature} data-testid="waterfall-row" data-feature={step.feature} className={step.feature === "other" ? "wf-other" : undefined}>
            <th scope="row" title={step.feature === "other" ? undefined : `${step.label} (${step.feature})`}>
              {step.label}
            </th>
            <td>
              <Bar from={step.start} to={step.end} lo={lo} hi={hi} className={step.contribution >= 0 ? "pos" : "neg"} />
            </td>
            <td className={`num ${step.contribution >= 0 ? "up" : "down"}`} data-testid="waterfall-contribution">
              {fmtSigned(step.contribution)}
            </td>
          </tr>
        ))}
        <tr className="wf-final">
          <th scope="row" title="100 × the model's probability; the score is this, rounded">
            Score (100 × probability)
          </th>
          <td>
            <Bar from={0} to={model.final} lo={lo} hi={hi} className="final" color={finalColor} />
          </td>
          <td className="num" data-testid="waterfall-final">
            {fmtNum(model.final)}
          </td>
        </tr>
      </tbody>
    </table>
  );
}
