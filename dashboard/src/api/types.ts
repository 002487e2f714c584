// Shapes of what `leadscore api` answers (docs/api.md, docs/events.md). Only the fields the
// dashboard reads are typed; the API may send more.

export type Grade = "A" | "B" | "C" | "D";
export const GRADES: Grade[] = ["A", "B", "C", "D"];

export interface Reason {
  feature: string;
  label: string;
  value: number;
  contribution: number;
}

export interface ReasonChange {
  feature: string;
  label: string;
  contribution: number;
  previous_contribution: number;
  delta: number;
}

export interface ScoreComponents {
  fit: number;
  engagement: number;
  families: Record<string, number>;
}

/** A `lead.scored` event of `leads.scores.v1`. */
export interface ScoreEvent {
  type: "lead.scored";
  id: string;
  lead_id: string;
  score: number;
  probability: number;
  grade: Grade;
  previous_score: number | null;
  previous_grade: Grade | null;
  model_version: string;
  base_score: number;
  reasons: Reason[];
  changes: ReasonChange[];
  components: ScoreComponents | null;
  cause_event_id: string;
  cause_event_type?: string | null;
  event_time: string;
  scored_at: string;
  experiment: string | null;
  arm: string | null;
}

export interface LeaderboardEntry {
  rank: number;
  lead_id: string;
  score: number;
  probability: number;
  grade: Grade | null;
  model_version: string | null;
  scored_at: string | null;
}

export interface Leaderboard {
  total: number;
  offset: number;
  limit: number;
  leads: LeaderboardEntry[];
}

/** The worker's state of a lead (times in epoch seconds). */
export interface LeadState {
  lead_id: string;
  first_event_t: number | null;
  last_event_t: number | null;
  first_activity_t: number | null;
  last_activity_t: number | null;
  counts: Record<string, number>;
  page_seconds: number;
  high_intent_views: number;
  calls_answered: number;
  call_seconds: number;
  assets: string[];
  active_days: number[];
  profile: Record<string, unknown>;
  outcome: string | null;
  outcome_t: number | null;
  score: number | null;
  grade: Grade | null;
  model_version: string | null;
}

export interface LeadDetail {
  lead_id: string;
  score: ScoreEvent | null;
  state: LeadState | null;
}

export interface ScoreHistory {
  lead_id: string;
  scores: ScoreEvent[];
}

export interface ActivityItem {
  id: string;
  type: string;
  time: string;
  data: Record<string, unknown>;
}

export interface LeadActivity {
  lead_id: string;
  events: ActivityItem[];
}

export interface Distribution {
  total: number;
  bins: { from: number; to: number; count: number }[];
  grades: Record<Grade, number>;
  thresholds?: Record<string, number>;
}

export interface OutcomeCell {
  n: number;
  converted: number;
  rate: number | null;
  lift?: number | null;
}

export interface TrendBucket {
  start: string;
  scores: number;
  bins: number[];
  grades: Record<Grade, number>;
  families: Record<string, number>;
  fit: number | null;
  engagement: number | null;
  outcomes: Partial<Record<Grade, OutcomeCell>>;
}

export interface Trends {
  bucket_s: number;
  since?: string;
  until?: string;
  buckets: TrendBucket[];
  totals: { outcomes: Partial<Record<Grade, OutcomeCell>>; scores?: number; overall?: OutcomeCell };
}

export interface Performance {
  model: Record<string, unknown> & { version: string | null; champion: string | null };
  stream: {
    totals: Record<string, number>;
    rates_per_s: Record<string, number>;
    rate_window_s: number;
    leads_scored: number;
  };
  api: Record<string, unknown>;
  feed: Record<string, unknown>;
}

export interface ModelRow {
  version: string;
  created_at: string | null;
  kind: string | null;
  variant: string | null;
  n_rows: number | null;
  roc_auc: number | null;
  accuracy: number | null;
  champion: boolean;
  problem: string | null;
}

export interface ModelList {
  champion: string | null;
  serving: string | null;
  models: ModelRow[];
}

export interface DriftEvent {
  type: "drift.window" | "drift.baseline";
  id: string;
  model_version: string;
  level: "none" | "low" | "medium" | "high";
  window_index: number;
  n_rows: number;
  window_start: string | null;
  window_end: string | null;
  report: Record<string, any>;
  performance: Record<string, any> | null;
  at: string;
}

export interface DriftState {
  latest: Record<string, DriftEvent>;
  events: DriftEvent[];
}

export interface RetrainDecision {
  outcome: "promoted" | "rejected" | "skipped" | "failed";
  trigger: string;
  reason: string;
  [field: string]: unknown;
}

export interface Job {
  id: string;
  kind: "train" | "score_file" | "retrain";
  status: "queued" | "running" | "succeeded" | "failed";
  progress: number;
  stage: string;
  message: string;
  created_at: string;
  finished_at: string | null;
  result: Record<string, unknown> | null;
}

export interface Experiment {
  id: string;
  name: string;
  champion: string | null;
  challenger: string;
  traffic: number;
  description: string;
  status: "draft" | "running" | "stopped";
  created_at: string;
  created_by: string;
}

export interface WhoAmI {
  id: string;
  name: string;
  scopes: string[];
  allows: { read: boolean; score: boolean; admin: boolean };
}
