// A semicircle gauge of a 0–100 score, filled in the grade's colour, with ticks at the grade cut-offs.
import type { Grade } from "../api/types";
import { GRADE_COLORS } from "../format";
import { DEFAULT_THRESHOLDS, type Thresholds } from "./grades";

const CX = 100;
const CY = 100;
const R = 80;

/** The point on the gauge's arc at `score` (0 = left end, 100 = right end). */
export function arcPoint(score: number, radius = R): [number, number] {
  const angle = Math.PI * (1 - Math.min(100, Math.max(0, score)) / 100);
  return [CX + radius * Math.cos(angle), CY - radius * Math.sin(angle)];
}

/** The SVG path of the arc from 0 to `score`. */
export function arcPath(score: number): string {
  const [x, y] = arcPoint(score);
  return `M ${CX - R} ${CY} A ${R} ${R} 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`;
}

export function ScoreGauge({
  score,
  grade,
  thresholds = DEFAULT_THRESHOLDS,
}: {
  score: number;
  grade: Grade;
  thresholds?: Thresholds;
}) {
  const color = GRADE_COLORS[grade];
  const cutoffs = Object.entries(thresholds).filter((entry): entry is [string, number] => typeof entry[1] === "number");
  return (
    <svg className="score-gauge" viewBox="0 0 200 118" role="img" aria-label={`Score ${score} of 100, grade ${grade}`}>
      <path d={arcPath(100)} fill="none" stroke="#e2e8f0" strokeWidth={16} />
      {score > 0 && <path d={arcPath(score)} fill="none" stroke={color} strokeWidth={16} data-testid="gauge-arc" />}
      {cutoffs.map(([name, cutoff]) => {
        const [x1, y1] = arcPoint(cutoff, R - 11);
        const [x2, y2] = arcPoint(cutoff, R + 11);
        const [tx, ty] = arcPoint(cutoff, R + 19);
        return (
          <g key={name} className="gauge-tick">
            <line x1={x1} y1={y1} x2={x2} y2={y2} stroke="#475569" strokeWidth={1.5} />
            <text x={tx} y={ty} textAnchor="middle" dominantBaseline="middle" fontSize={9} fill="#64748b">
              {cutoff}
            </text>
          </g>
        );
      })}
      <text x={CX} y={CY - 14} textAnchor="middle" fontSize={38} fontWeight={700} fill="#0f172a" data-testid="lead-score">
        {score}
      </text>
      <text x={CX} y={CY + 10} textAnchor="middle" fontSize={10} fill="#64748b">
        of 100
      </text>
    </svg>
  );
}
