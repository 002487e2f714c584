// Grade cut-offs (score points) and what follows from them, shared by the overview and lead views.
import type { Grade } from "../api/types";

/** The API's default `LEADSCORE_GRADE_THRESHOLDS`; `/v1/leads/distribution` answers the real ones. */
export const DEFAULT_THRESHOLDS: Record<"A" | "B" | "C", number> = { A: 80, B: 60, C: 40 };

export type Thresholds = Partial<Record<string, number>>;

export function gradeOf(score: number, thresholds: Thresholds = DEFAULT_THRESHOLDS): Grade {
  const a = thresholds.A ?? DEFAULT_THRESHOLDS.A;
  const b = thresholds.B ?? DEFAULT_THRESHOLDS.B;
  const c = thresholds.C ?? DEFAULT_THRESHOLDS.C;
  return score >= a ? "A" : score >= b ? "B" : score >= c ? "C" : "D";
}

export interface GradeMargin {
  /** Points (on the 0–100 scale) to the nearest cut-off, either way. */
  points: number;
  /** The cut-off that is nearest and the grade on its other side. */
  cutoff: number;
  direction: "above" | "below";
  otherGrade: Grade;
  level: "firm" | "moderate" | "borderline";
}

/**
 * How far `points` (100 × probability) sits from the nearest grade cut-off. This says how
 * stable the grade is against small score moves, not how accurate the model is.
 */
export function gradeMargin(points: number, thresholds: Thresholds = DEFAULT_THRESHOLDS): GradeMargin {
  const cutoffs = [thresholds.C ?? 40, thresholds.B ?? 60, thresholds.A ?? 80];
  let best = cutoffs[0];
  for (const c of cutoffs) if (Math.abs(points - c) < Math.abs(points - best)) best = c;
  const direction = points >= best ? "above" : "below";
  const otherGrade = gradeOf(direction === "above" ? best - 0.001 : best, thresholds);
  const distance = Math.abs(points - best);
  const level = distance >= 10 ? "firm" : distance >= 4 ? "moderate" : "borderline";
  return { points: distance, cutoff: best, direction, otherGrade, level };
}
