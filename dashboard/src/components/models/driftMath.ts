// Drift report shapes (leadscore/models/monitoring/report.py `to_dict`) and the feature table's sorting.

/** One feature's test in one window; `effect` is KS D (test "ks") or PSI (test "chi2"). */
export interface FeatureDrift {
  feature: string;
  test: "ks" | "chi2" | string;
  statistic: number;
  p_value: number;
  adjusted_p: number;
  effect: number;
  drifted: boolean;
  persistent: boolean;
  large: boolean;
}

export interface DriftReport {
  window_index: number;
  n_rows: number;
  tested: boolean;
  level: string;
  reason: string;
  persistent_features: string[];
  features: FeatureDrift[];
  score: FeatureDrift | null;
}

export const LEVELS = ["none", "low", "medium", "high"] as const;

/** How bad a feature's state is: 3 persistent and large, 2 persistent, 1 drifted in this window only, 0 none. */
export function severity(f: FeatureDrift): number {
  if (f.persistent && f.large) return 3;
  if (f.persistent) return 2;
  if (f.drifted) return 1;
  return 0;
}

export const SEVERITY_TEXT = ["no drift", "drifted in this window", "persistent", "persistent, large"];
/** The level badge colour that fits a feature's severity. */
export const SEVERITY_LEVEL = ["none", "low", "medium", "high"];

export type SortKey = "feature" | "test" | "statistic" | "p_value" | "adjusted_p" | "effect" | "status";
export type SortDir = "asc" | "desc";

/** The direction a column sorts in first: the worst first for status and effect, the smallest p first. */
export const FIRST_DIR: Record<SortKey, SortDir> = {
  feature: "asc",
  test: "asc",
  statistic: "desc",
  p_value: "asc",
  adjusted_p: "asc",
  effect: "desc",
  status: "desc",
};

function value(f: FeatureDrift, key: SortKey): number | string {
  return key === "status" ? severity(f) : (f[key] as number | string);
}

/** A sorted copy; ties (and the status column) fall back to the smallest adjusted p, then the name. */
export function sortFeatures(features: FeatureDrift[], key: SortKey, dir: SortDir): FeatureDrift[] {
  const sign = dir === "asc" ? 1 : -1;
  return [...features].sort((a, b) => {
    const va = value(a, key);
    const vb = value(b, key);
    let c = 0;
    if (typeof va === "string" || typeof vb === "string") c = String(va).localeCompare(String(vb));
    else c = (Number.isNaN(va) ? Infinity : va) - (Number.isNaN(vb) ? Infinity : vb);
    if (c !== 0) return sign * c;
    return a.adjusted_p - b.adjusted_p || a.feature.localeCompare(b.feature);
  });
}

/** A p-value readable at a glance: "<0.0001", "0.0123", "1". */
export function fmtP(p: number | null | undefined): string {
  if (p === null || p === undefined || Number.isNaN(p)) return "—";
  if (p < 0.0001) return "<0.0001";
  if (p >= 0.9999) return "1";
  return p.toFixed(4);
}
