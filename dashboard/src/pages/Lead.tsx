// Lead view (route `/leads/:leadId`): the score and why. Gauge, grade, probability and
// how firm the grade is; the explanation as a waterfall; what changed; score history;
// fit/engagement; profile and recent activity. Refreshes when the feed brings this lead.
import { useQueryClient } from "@tanstack/react-query";
import { Link, useParams } from "react-router-dom";

import { ApiError } from "../api/client";
import { keys, useLead, useLeadActivity, useLeadHistory, useLeadScore, usePerformance } from "../api/hooks";
import type { Distribution, ScoreEvent } from "../api/types";
import { DEFAULT_THRESHOLDS, type Thresholds } from "../components/grades";
import { Confidence, Profile, RecentActivity, WhatChanged } from "../components/LeadPanels";
import { ScoreGauge } from "../components/ScoreGauge";
import { ScoreHistoryChart } from "../components/ScoreHistoryChart";
import { Empty, ErrorState, Loading } from "../components/states";
import { SubScores } from "../components/SubScores";
import { Waterfall } from "../components/Waterfall";
import { fmtAgo, fmtPct, fmtTime, GRADE_COLORS, shortVersion } from "../format";
import "../components/lead.css";

function is404(error: unknown): boolean {
  return error instanceof ApiError ? error.status === 404 : (error as ApiError | null)?.status === 404;
}

function ScoreHeader({ event, thresholds, rocAuc }: { event: ScoreEvent; thresholds: Thresholds; rocAuc: number | null | undefined }) {
  return (
    <section className="card lead-score-card" aria-label="Score">
      <ScoreGauge score={event.score} grade={event.grade} thresholds={thresholds} />
      <div className="lead-score-facts">
        <div className="stat">
          <span className="label">Grade</span>
          <span className="value">
            <span className={`grade big ${event.grade}`} data-testid="lead-grade">
              {event.grade}
            </span>
          </span>
        </div>
        <div className="stat" title="The model's probability that this lead converts">
          <span className="label">Probability</span>
          <span className="value" data-testid="lead-probability">
            {fmtPct(event.probability)}
          </span>
        </div>
      </div>
      <Confidence event={event} thresholds={thresholds} rocAuc={rocAuc} />
      <p className="caption muted">
        Scored {fmtAgo(event.scored_at)} by model <span className="mono" title={event.model_version}>{shortVersion(event.model_version)}</span>
      </p>
    </section>
  );
}

export function LeadView() {
  const { leadId = "" } = useParams();
  const client = useQueryClient();
  const score = useLeadScore(leadId);
  const detail = useLead(leadId);
  const history = useLeadHistory(leadId);
  const activity = useLeadActivity(leadId);
  const performance = usePerformance(0);
  // The real cut-offs come with the distribution (if the overview loaded it); else the defaults.
  const thresholds = client.getQueryData<Distribution>(keys.distribution)?.thresholds ?? DEFAULT_THRESHOLDS;
  const rocAuc = (performance.data?.model?.metrics as Record<string, number> | undefined)?.roc_auc;

  const title = (
    <div className="lead-heading">
      <Link to="/" className="back">
        ← Overview
      </Link>
      <h1>
        Lead <span className="mono lead-id">{leadId}</span>
      </h1>
    </div>
  );

  if (score.isLoading || (is404(score.error) && detail.isLoading)) {
    return (
      <section className="lead">
        {title}
        <Loading what="Loading the lead" />
      </section>
    );
  }

  if (is404(score.error)) {
    const known = !!detail.data?.state;
    return (
      <section className="lead">
        {title}
        <div data-testid="lead-not-found">
          <Empty>
            {known ? (
              <>
                <strong>This lead has no published score yet.</strong> It is known (its profile is below); it gets a score with its next activity.
              </>
            ) : (
              <>
                <strong>No lead with the id “{leadId}” has a score.</strong> Check the id, or pick a lead from the <Link to="/">leaderboard</Link>.
              </>
            )}
          </Empty>
        </div>
        {known && (
          <section className="card lead-panel">
            <h2>Profile and activity</h2>
            <Profile state={detail.data?.state} />
          </section>
        )}
      </section>
    );
  }

  if (!score.data) {
    return (
      <section className="lead">
        {title}
        <ErrorState error={score.error} retry={() => score.refetch()} />
      </section>
    );
  }

  const event = score.data;
  return (
    <section className="lead" data-lead-id={event.lead_id}>
      {title}
      <div className="lead-top">
        <div className="lead-col">
          <ScoreHeader event={event} thresholds={thresholds} rocAuc={rocAuc} />
          <section className="card lead-panel" aria-labelledby="sub-title">
            <h2 id="sub-title">Fit and engagement</h2>
            {event.components ? <SubScores components={event.components} /> : <p className="muted">This score has no breakdown by family (an older model).</p>}
          </section>
        </div>
        <div className="lead-col">
          <section className="card lead-panel" aria-labelledby="why-title">
            <h2 id="why-title">
              Why {event.score}? <span className="muted h-note">· base score, then each factor's points</span>
            </h2>
            <Waterfall baseScore={event.base_score} reasons={event.reasons} probability={event.probability} finalColor={GRADE_COLORS[event.grade]} />
            <p className="caption muted">
              The {event.reasons.length} factors with the largest effect, largest first; “other factors” is the rest of the model's features together. Hover a
              bar for the running score.
            </p>
          </section>
          <section className="card lead-panel" aria-labelledby="changed-title">
            <h2 id="changed-title">What changed since the previous score</h2>
            <WhatChanged event={event} />
          </section>
        </div>
      </div>
      <section className="card lead-panel" aria-labelledby="history-title">
        <h2 id="history-title">
          Score history <span className="muted h-note">· by event time; each dot is a published score</span>
        </h2>
        {history.data ? (
          history.data.scores.length ? (
            <ScoreHistoryChart scores={history.data.scores} thresholds={thresholds} />
          ) : (
            <p className="muted">No history kept for this lead.</p>
          )
        ) : history.error ? (
          <ErrorState error={history.error} retry={() => history.refetch()} />
        ) : (
          <Loading what="Loading the history" />
        )}
      </section>
      <div className="lead-row">
        <section className="card lead-panel" aria-labelledby="profile-title">
          <h2 id="profile-title">Who the lead is and what they did</h2>
          {detail.data ? (
            <Profile state={detail.data.state} />
          ) : detail.error ? (
            <ErrorState error={detail.error} retry={() => detail.refetch()} />
          ) : (
            <Loading what="Loading the profile" />
          )}
        </section>
        <section className="card lead-panel" aria-labelledby="activity-title">
          <h2 id="activity-title">
            Recent activity <span className="muted h-note">· newest first</span>
          </h2>
          <RecentActivity query={activity} />
        </section>
      </div>
      <p className="muted caption">Event time of this score: {fmtTime(event.event_time)}.</p>
    </section>
  );
}
