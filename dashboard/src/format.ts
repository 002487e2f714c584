// Number, time and label formatting shared by the views.
import type { Grade } from "./api/types";

export const GRADE_COLORS: Record<Grade, string> = { A: "#15803d", B: "#2563eb", C: "#d97706", D: "#94a3b8" };

export const FAMILY_COLORS: Record<string, string> = {
  behavioral: "#2563eb",
  demographic: "#7c3aed",
  engagement: "#0891b2",
  content: "#16a34a",
  temporal: "#d97706",
  interaction: "#db2777",
  data_quality: "#64748b",
};

const INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function fmtInt(n: number | null | undefined): string {
  // One formatter for every call: toLocaleString builds a new one each time (measured hot
  // in a feed burst, benchmarks/dashboard_scale.py).
  return n === null || n === undefined || Number.isNaN(n) ? "—" : INT.format(Math.round(n));
}

export function fmtNum(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || Number.isNaN(n) ? "—" : n.toFixed(digits);
}

export function fmtSigned(n: number, digits = 1): string {
  const text = Math.abs(n).toFixed(digits);
  return n > 0 ? `+${text}` : n < 0 ? `−${text}` : text;
}

export function fmtPct(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || Number.isNaN(n) ? "—" : `${(n * 100).toFixed(digits)} %`;
}

export function fmtTime(iso: string | number | null | undefined): string {
  if (iso === null || iso === undefined) return "—";
  const date = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  if (Number.isNaN(date.getTime())) return "—";
  return date.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" }) + " UTC";
}

/** "3 s ago", "5 min ago", … relative to now. */
export function fmtAgo(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "—";
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** `lead.page_viewed` → "page viewed". */
export function eventLabel(type: string | null | undefined): string {
  if (!type) return "—";
  return type.replace(/^lead\./, "").replace(/_/g, " ");
}

export function shortVersion(version: string | null | undefined): string {
  if (!version) return "—";
  return version.length > 24 ? `${version.slice(0, 22)}…` : version;
}
