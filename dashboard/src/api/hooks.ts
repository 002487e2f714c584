// React Query hooks: one per API read, with the query keys the live feed invalidates.
import { keepPreviousData, useQuery } from "@tanstack/react-query";

import { api, query } from "./client";
import type {
  DriftState,
  Distribution,
  Experiment,
  Job,
  LeadActivity,
  LeadDetail,
  Leaderboard,
  ModelList,
  Performance,
  RetrainDecision,
  ScoreEvent,
  ScoreHistory,
  Trends,
  WhoAmI,
} from "./types";

/** Query keys; the live feed invalidates `leaderboard`, `distribution` and one lead's keys. */
export const keys = {
  whoami: ["whoami"] as const,
  leaderboard: (offset: number, limit: number) => ["leaderboard", offset, limit] as const,
  distribution: ["distribution"] as const,
  performance: ["performance"] as const,
  lead: (id: string) => ["lead", id] as const,
  leadScore: (id: string) => ["lead", id, "score"] as const,
  history: (id: string) => ["lead", id, "history"] as const,
  activity: (id: string) => ["lead", id, "activity"] as const,
  trends: (bucket: string, since?: string, until?: string) => ["trends", bucket, since, until] as const,
  models: ["models"] as const,
  model: (version: string) => ["models", version] as const,
  drift: ["drift"] as const,
  driftPerformance: ["drift", "performance"] as const,
  retraining: ["retraining"] as const,
  experiments: ["experiments"] as const,
  job: (id: string) => ["jobs", id] as const,
};

const enc = encodeURIComponent;

export function useWhoAmI() {
  return useQuery({ queryKey: keys.whoami, queryFn: () => api<WhoAmI>("/v1/whoami"), staleTime: 60_000 });
}

export function useLeaderboard(offset: number, limit: number) {
  return useQuery({
    queryKey: keys.leaderboard(offset, limit),
    queryFn: ({ signal }) => api<Leaderboard>(`/v1/leads/top${query({ offset, limit })}`, { signal }),
    placeholderData: keepPreviousData,
    // Pages left behind are dropped after 30 s (not React Query's 5 min): walking through
    // 1,000 pages of 100,000 leads kept ~17 MB of them (benchmarks/dashboard_scale.py).
    gcTime: 30_000,
  });
}

export function useDistribution() {
  return useQuery({
    queryKey: keys.distribution,
    queryFn: ({ signal }) => api<Distribution>("/v1/leads/distribution?bins=20", { signal }),
  });
}

/** Stream totals and rates; polled, since rates move whether or not a score changes. */
export function usePerformance(refetchInterval = 5000) {
  return useQuery({
    queryKey: keys.performance,
    queryFn: ({ signal }) => api<Performance>("/v1/metrics/performance", { signal }),
    refetchInterval,
  });
}

export function useLead(id: string) {
  return useQuery({ queryKey: keys.lead(id), queryFn: ({ signal }) => api<LeadDetail>(`/v1/leads/${enc(id)}`, { signal }) });
}

export function useLeadScore(id: string) {
  return useQuery({
    queryKey: keys.leadScore(id),
    queryFn: ({ signal }) => api<ScoreEvent>(`/v1/leads/${enc(id)}/score`, { signal }),
  });
}

export function useLeadHistory(id: string, limit = 200) {
  return useQuery({
    queryKey: keys.history(id),
    queryFn: ({ signal }) => api<ScoreHistory>(`/v1/leads/${enc(id)}/history?limit=${limit}`, { signal }),
  });
}

export function useLeadActivity(id: string, limit = 50) {
  return useQuery({
    queryKey: keys.activity(id),
    queryFn: ({ signal }) => api<LeadActivity>(`/v1/leads/${enc(id)}/activity?limit=${limit}`, { signal }),
  });
}

/** Trend buckets; the previous answer stays on screen while another bucket or range loads. */
export function useTrends(bucket: "hour" | "day" | "week", since?: string, until?: string) {
  return useQuery({
    queryKey: keys.trends(bucket, since, until),
    queryFn: ({ signal }) => api<Trends>(`/v1/trends${query({ bucket, since, until })}`, { signal }),
    placeholderData: keepPreviousData,
    refetchInterval: 60_000,
  });
}

export function useModels() {
  return useQuery({ queryKey: keys.models, queryFn: ({ signal }) => api<ModelList>("/v1/models", { signal }) });
}

export function useModel(version: string | null) {
  return useQuery({
    queryKey: keys.model(version ?? ""),
    queryFn: ({ signal }) => api<Record<string, any>>(`/v1/models/${enc(version!)}`, { signal }),
    enabled: !!version,
  });
}

export function useDrift(limit = 20) {
  return useQuery({
    queryKey: keys.drift,
    queryFn: ({ signal }) => api<DriftState>(`/v1/drift?limit=${limit}`, { signal }),
    refetchInterval: 15_000,
  });
}

export function useDriftPerformance() {
  return useQuery({
    queryKey: keys.driftPerformance,
    queryFn: ({ signal }) => api<{ performance: Record<string, any> }>("/v1/drift/performance", { signal }),
    refetchInterval: 15_000,
  });
}

export function useRetraining(limit = 20) {
  return useQuery({
    queryKey: keys.retraining,
    queryFn: ({ signal }) => api<{ decisions: RetrainDecision[] } | RetrainDecision[]>(`/v1/models/retraining?limit=${limit}`, { signal }),
    refetchInterval: 15_000,
  });
}

export function useExperiments() {
  return useQuery({
    queryKey: keys.experiments,
    queryFn: ({ signal }) => api<Experiment[] | { experiments: Experiment[] }>("/v1/experiments", { signal }),
  });
}

/** A job, polled every second until it finishes. */
export function useJob(id: string | null) {
  return useQuery({
    queryKey: keys.job(id ?? ""),
    queryFn: ({ signal }) => api<Job>(`/v1/jobs/${enc(id!)}`, { signal }),
    enabled: !!id,
    refetchInterval: (q) => {
      const status = q.state.data?.status;
      return status === "succeeded" || status === "failed" ? false : 1000;
    },
  });
}
