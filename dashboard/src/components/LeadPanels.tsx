// The smaller panels of the lead view: confidence, what changed, profile, recent activity.
import type { ReactNode } from "react";

import { ApiError } from "../api/client";
import type { ActivityItem, LeadActivity, LeadState, ScoreEvent } from "../api/types";
import { eventLabel, fmtInt, fmtNum, fmtPct, fmtSigned, fmtTime } from "../format";
import { gradeMargin, type Thresholds } from "./grades";
import { Loading } from "./states";
import "./lead.css";

const LEVEL_TEXT = { firm: "Firm grade", moderate: "Fairly firm grade", borderline: "Borderline grade" };

/**
 * How sure the grade is. Honest about what it measures: the distance of 100 × probability
 * from the nearest grade cut-off (a small move re-grades a borderline lead), and, apart from
 * that, the model's cross-validated ROC-AUC (how well it ranks leads in general).
 */
export function Confidence({ event, thresholds, rocAuc }: { event: ScoreEvent; thresholds: Thresholds; rocAuc: number | null | undefined }) {
  const points = 100 * event.probability;
  const margin = gradeMargin(points, thresholds);
  const filled = margin.level === "firm" ? 3 : margin.level === "moderate" ? 2 : 1;
  const explain =
    "Grade margin: how many score points separate this lead from the nearest grade cut-off. " +
    "A borderline lead can change grade with one more event. It is not the probability of being right; " +
    "the model's ROC-AUC below says how well it ranks leads overall.";
  return (
    <div className="confidence" data-testid="confidence" title={explain}>
      <div className="conf-head">
        <span className={`conf-meter ${margin.level}`} aria-hidden>
          {[1, 2, 3].map((i) => (
            <span key={i} className={i <= filled ? "on" : ""} />
          ))}
        </span>
        <strong>{LEVEL_TEXT[margin.level]}</strong>
      </div>
      <p className="caption">
        {fmtNum(margin.points)} points {margin.direction} the {margin.direction === "above" ? event.grade : margin.otherGrade} cut-off ({margin.cutoff});{" "}
        {margin.direction === "above" ? `a drop of that much makes it ${margin.otherGrade}` : `a rise of that much makes it ${margin.otherGrade}`}.
      </p>
      {rocAuc !== null && rocAuc !== undefined && (
        <p className="caption muted">
          Model ranking quality (ROC-AUC, cross-validated): {fmtNum(rocAuc, 2)}: it puts a converting lead above a non-converting one {fmtPct(rocAuc, 0)} of the
          time.
        </p>
      )}
    </div>
  );
}

export function WhatChanged({ event }: { event: ScoreEvent }) {
  const first = event.previous_score === null || event.previous_score === undefined;
  if (first || !event.changes?.length) {
    return (
      <div className="what-changed" data-testid="what-changed">
        <p>
          <strong>First score</strong> for this lead{first ? "" : ` (no factor moved since ${event.previous_score})`}: nothing to compare with yet. The
          explanation above shows what it is made of.
        </p>
      </div>
    );
  }
  const delta = event.score - (event.previous_score as number);
  return (
    <div className="what-changed" data-testid="what-changed">
      <p className="wc-summary">
        Score {event.previous_score} → <strong>{event.score}</strong>{" "}
        <span className={delta > 0 ? "up" : delta < 0 ? "down" : "muted"}>({fmtSigned(delta, 0)})</span>
        {event.previous_grade && event.previous_grade !== event.grade ? (
          <>
            {" "}
            · grade <span className={`grade ${event.previous_grade}`}>{event.previous_grade}</span> → <span className={`grade ${event.grade}`}>{event.grade}</span>
          </>
        ) : null}
        <span className="muted"> · after a {event.cause_event_type ? eventLabel(event.cause_event_type) : "new event"} at {fmtTime(event.event_time)}</span>
      </p>
      <table className="data">
        <thead>
          <tr>
            <th>Factor (now)</th>
            <th className="num">Before</th>
            <th className="num">Now</th>
            <th className="num">Change</th>
          </tr>
        </thead>
        <tbody>
          {event.changes.map((change) => (
            <tr key={change.feature} data-testid="change-row" data-feature={change.feature}>
              <td title={change.feature}>{change.label}</td>
              <td className="num muted">{fmtSigned(change.previous_contribution)}</td>
              <td className="num">{fmtSigned(change.contribution)}</td>
              <td className={`num ${change.delta >= 0 ? "up" : "down"}`}>
                <strong>{fmtSigned(change.delta)}</strong>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="caption muted">Score points each factor gave in the previous published score and now.</p>
    </div>
  );
}

function show(value: unknown): string {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") return Number.isInteger(value) ? fmtInt(value) : fmtNum(value, 2);
  if (Array.isArray(value)) return value.map(show).join(", ");
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.every(([, v]) => typeof v === "boolean")) {
      const yes = entries.filter(([, v]) => v).map(([k]) => k.replace(/_/g, " "));
      const no = entries.filter(([, v]) => !v).map(([k]) => k.replace(/_/g, " "));
      return `${yes.join(", ") || "none"}${no.length ? ` (missing: ${no.join(", ")})` : ""}`;
    }
    return entries.map(([k, v]) => `${k}: ${show(v)}`).join(", ");
  }
  return String(value);
}

function words(key: string): string {
  const text = key.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function Facts({ rows }: { rows: [string, ReactNode][] }) {
  return (
    <dl className="facts">
      {rows.map(([name, value]) => (
        <div key={name}>
          <dt>{name}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

export function Profile({ state }: { state: LeadState | null | undefined }) {
  if (!state) return <p className="muted">No profile or activity recorded for this lead.</p>;
  const profile = state.profile ?? {};
  const profileRows: [string, ReactNode][] = Object.entries(profile).map(([k, v]) => [words(k), show(v)]);
  const activityRows: [string, ReactNode][] = [
    ["First seen", fmtTime(state.first_event_t)],
    ["Last activity", fmtTime(state.last_activity_t)],
    ["Active days", fmtInt(state.active_days?.length)],
    ["Time on site", `${fmtNum((state.page_seconds ?? 0) / 60, 0)} min`],
    ["Pricing/demo/contact views", fmtInt(state.high_intent_views)],
    ["Calls answered", `${fmtInt(state.calls_answered)} (${fmtNum((state.call_seconds ?? 0) / 60, 0)} min)`],
    ["Assets downloaded", fmtInt(state.assets?.length)],
    ["Outcome", state.outcome ? `${state.outcome}${state.outcome_t ? ` · ${fmtTime(state.outcome_t)}` : ""}` : "open"],
  ];
  const counts = Object.entries(state.counts ?? {}).sort((a, b) => b[1] - a[1]);
  return (
    <div className="profile" data-testid="lead-profile">
      <div>
        <h3>Profile</h3>
        {profileRows.length ? <Facts rows={profileRows} /> : <p className="muted">No profile fields yet.</p>}
      </div>
      <div>
        <h3>Activity so far</h3>
        <Facts rows={activityRows} />
        {counts.length > 0 && (
          <ul className="counts">
            {counts.map(([type, n]) => (
              <li key={type}>
                <span className="num">{fmtInt(n)}</span> {eventLabel(type)}
              </li>
            ))}
          </ul>
        )}
      </div>
    </div>
  );
}

function summary(item: ActivityItem): string {
  return Object.entries(item.data ?? {})
    .map(([k, v]) => `${k.replace(/_/g, " ")}: ${show(v)}`)
    .join(" · ");
}

/** Recent input events. The endpoint may be missing on an older API: a quiet note, not an error. */
export function RecentActivity({ query }: { query: { data: LeadActivity | undefined; error: unknown; isLoading: boolean } }) {
  if (query.error && !query.data) {
    const status = (query.error as ApiError).status;
    return (
      <p className="muted" data-testid="activity-unavailable">
        Recent activity is not available{status === 404 ? " from this API (or for this lead)" : ` (${(query.error as Error).message})`}.
      </p>
    );
  }
  if (!query.data) return <Loading what="Loading activity" />;
  const data = query.data;
  const items = data.events;
  if (!items.length) return <p className="muted">No activity recorded.</p>;
  return (
    <ol className="activity" data-testid="lead-activity">
      {items.map((item) => (
        <li key={item.id}>
          <span className="act-type">{eventLabel(item.type)}</span>
          <span className="act-time muted">{fmtTime(item.time)}</span>
          <span className="act-data muted" title={summary(item)}>
            {summary(item)}
          </span>
        </li>
      ))}
    </ol>
  );
}
