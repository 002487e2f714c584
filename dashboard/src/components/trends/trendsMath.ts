// The numbers the Trends page derives from GET /v1/trends: grade shares, the median and
// mean score estimated from the 10-point bins, conversion and lift per grade.
import { GRADES, type Grade, type OutcomeCell, type TrendBucket, type Trends } from "../../api/types";

/** Fewer outcomes than this in a grade: its rate and lift are shown, but flagged as noise. */
export const MIN_OUTCOMES = 20;

export type BucketName = "hour" | "day" | "week";

/** What GET /v1/trends answers (types.ts has the part every page reads). */
/** What GET /v1/trends answers (api/types.ts). */
export type TrendsAnswer = Trends;

/** Mean and median score of a bucket from its bins (bin i holds scores 10i … 10i+9; the last also 100). */
export function binStats(bins: number[]): { n: number; mean: number | null; median: number | null } {
  const n = bins.reduce((sum, count) => sum + count, 0);
  if (!n) return { n: 0, mean: null, median: null };
  let weighted = 0;
  bins.forEach((count, i) => {
    weighted += count * (i * 10 + 5);
  });
  // The median is interpolated inside the bin that holds the middle score.
  const half = n / 2;
  let before = 0;
  let median: number | null = null;
  for (let i = 0; i < bins.length; i++) {
    if (bins[i] && before + bins[i] >= half) {
      median = i * 10 + (10 * (half - before)) / bins[i];
      break;
    }
    before += bins[i];
  }
  return { n, mean: weighted / n, median };
}

export interface ConversionRow {
  grade: Grade;
  n: number;
  converted: number;
  rate: number | null;
  /** The grade's rate over the overall rate (null when either is undefined or the overall is 0). */
  lift: number | null;
  enough: boolean;
}

/** Conversion and lift per grade, and overall, from outcome counts. */
export function conversionRows(outcomes: Partial<Record<Grade, OutcomeCell>>): {
  rows: ConversionRow[];
  overall: { n: number; converted: number; rate: number | null };
} {
  let n = 0;
  let converted = 0;
  for (const grade of GRADES) {
    n += outcomes[grade]?.n ?? 0;
    converted += outcomes[grade]?.converted ?? 0;
  }
  const overallRate = n ? converted / n : null;
  const rows = GRADES.map((grade) => {
    const cell = outcomes[grade];
    const gn = cell?.n ?? 0;
    const gc = cell?.converted ?? 0;
    const rate = gn ? gc / gn : null;
    const lift = rate !== null && overallRate ? rate / overallRate : null;
    return { grade, n: gn, converted: gc, rate, lift, enough: gn >= MIN_OUTCOMES };
  });
  return { rows, overall: { n, converted, rate: overallRate } };
}

const MONTH_DAY: Intl.DateTimeFormatOptions = { month: "short", day: "numeric", timeZone: "UTC" };

/** A bucket's start as a short axis label (UTC). */
export function bucketLabel(iso: string, bucket: BucketName): string {
  const date = new Date(iso);
  if (bucket === "hour") {
    return `${date.toLocaleDateString("en-GB", MONTH_DAY)} ${String(date.getUTCHours()).padStart(2, "0")}:00`;
  }
  const day = date.toLocaleDateString("en-GB", MONTH_DAY);
  return bucket === "week" ? `wk ${day}` : day;
}

export interface ShareRow {
  label: string;
  start: string;
  scores: number;
  A: number | null;
  B: number | null;
  C: number | null;
  D: number | null;
  median: number | null;
  mean: number | null;
}

/** Per bucket: each grade's share of the scores (%), the median and mean score. */
export function shareRows(buckets: TrendBucket[], bucket: BucketName): ShareRow[] {
  return buckets.map((b) => {
    const total = GRADES.reduce((sum, g) => sum + (b.grades[g] ?? 0), 0);
    const share = (g: Grade) => (total ? (100 * (b.grades[g] ?? 0)) / total : null);
    const stats = binStats(b.bins);
    return {
      label: bucketLabel(b.start, bucket),
      start: b.start,
      scores: b.scores,
      A: share("A"),
      B: share("B"),
      C: share("C"),
      D: share("D"),
      median: stats.median,
      mean: stats.mean,
    };
  });
}

/** Per bucket: mean points of each factor family (null where the bucket has no scores). */
export function familyRows(buckets: TrendBucket[], bucket: BucketName): {
  rows: Record<string, number | string | null>[];
  families: string[];
} {
  const names = new Set<string>();
  buckets.forEach((b) => Object.keys(b.families ?? {}).forEach((name) => names.add(name)));
  const families = [...names].sort();
  const rows = buckets.map((b) => {
    const row: Record<string, number | string | null> = { label: bucketLabel(b.start, bucket), start: b.start };
    for (const name of families) row[name] = b.families?.[name] ?? null;
    row.fit = b.fit;
    row.engagement_total = b.engagement;
    return row;
  });
  return { rows, families };
}

/** Buckets from the first one with scores or outcomes on ("all": no leading empty buckets). */
export function trimLeadingEmpty(buckets: TrendBucket[]): TrendBucket[] {
  const first = buckets.findIndex(
    (b) => b.scores > 0 || GRADES.some((g) => (b.outcomes?.[g]?.n ?? 0) > 0),
  );
  return first < 0 ? [] : buckets.slice(first);
}
