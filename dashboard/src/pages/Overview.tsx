// Overview (route `/`): who to call now. Grade counts and stream rates on top, the live
// leaderboard, the score distribution and the newest score changes as they happen.
import { memo, type ReactNode } from "react";

import { useDistribution, usePerformance } from "../api/hooks";
import { useFeedRate, useFeedState, useRecentScores } from "../api/live";
import { GRADES, type Distribution, type Grade } from "../api/types";
import { Leaderboard } from "../components/Leaderboard";
import { NewestChanges } from "../components/NewestChanges";
import { ScoreDistribution } from "../components/ScoreDistribution";
import { Empty, ErrorState, Loading } from "../components/states";
import { fmtInt, fmtNum, fmtPct } from "../format";
import "../components/overview.css";

function Stat({ label, value, sub, testId, title }: { label: ReactNode; value: ReactNode; sub?: ReactNode; testId?: string; title?: string }) {
  return (
    <div className="card stat ov-stat" title={title}>
      <span className="label">{label}</span>
      <span className="value" data-testid={testId}>
        {value}
      </span>
      {sub !== undefined && <span className="sub muted">{sub}</span>}
    </div>
  );
}

function GradeStat({ grade, distribution }: { grade: Grade; distribution: Distribution | undefined }) {
  const count = distribution?.grades?.[grade];
  const total = distribution?.total ?? 0;
  const cutoff = distribution?.thresholds?.[grade];
  const below = grade === "D" ? distribution?.thresholds?.C : undefined;
  const range = cutoff !== undefined ? `score ≥ ${cutoff} · ` : below !== undefined ? `score < ${below} · ` : "";
  return (
    <Stat
      label={
        <>
          <span className={`grade ${grade}`}>{grade}</span> leads
        </>
      }
      value={fmtInt(count)}
      sub={count !== undefined && total ? `${range}${fmtPct(count / total)}` : "\u00a0"}
      testId={`grade-count-${grade}`}
    />
  );
}

function DistributionCard() {
  const query = useDistribution();
  let body: ReactNode;
  if (query.data) {
    body = query.data.total === 0 ? <Empty>No scores yet: the histogram fills in as leads are scored.</Empty> : <ScoreDistribution distribution={query.data} />;
  } else if (query.error) {
    body = <ErrorState error={query.error} retry={() => query.refetch()} />;
  } else {
    body = <Loading what="Loading the distribution" />;
  }
  return (
    <section className="card" aria-labelledby="dist-title">
      <h2 id="dist-title">
        Score distribution{query.data ? <span className="muted h-note"> · {fmtInt(query.data.total)} leads</span> : null}
      </h2>
      {body}
    </section>
  );
}

// The parts that follow the feed are their own components: a flush (4 a second during
// traffic) re-renders them, not the leaderboard or the charts.
function FeedStat() {
  const rate = useFeedRate();
  const feed = useFeedState();
  return (
    <Stat
      label="This page's feed"
      value={`${fmtNum(rate)}/s`}
      sub={feed.dropped ? `${fmtInt(feed.dropped)} dropped by the server` : feed.status}
      testId="stat-feed-rate"
      title="Score events received by this browser over the last 10 s"
    />
  );
}

function LiveChanges() {
  return <NewestChanges events={useRecentScores()} />;
}

const MemoLeaderboard = memo(Leaderboard);
const MemoDistributionCard = memo(DistributionCard);

export function Overview() {
  const distribution = useDistribution();
  const performance = usePerformance();
  const stream = performance.data?.stream;
  const rates = stream?.rates_per_s ?? {};
  const totals = stream?.totals ?? {};
  const windowS = stream?.rate_window_s;
  const rateTitle = windowS ? `Average over the last ${fmtNum(windowS, 0)} s, from the workers' counters` : undefined;

  return (
    <section className="overview">
      <div className="ov-heading">
        <h1>Overview</h1>
        {performance.error && !performance.data ? (
          <span className="muted">Stream metrics unavailable: {(performance.error as Error).message}</span>
        ) : null}
      </div>
      <div className="ov-stats">
        {GRADES.map((grade) => (
          <GradeStat key={grade} grade={grade} distribution={distribution.data} />
        ))}
        <Stat label="Events / s" value={fmtNum(rates.events)} sub={`${fmtInt(totals.events)} in all`} testId="stat-events-rate" title={rateTitle} />
        <Stat label="Scores / s" value={fmtNum(rates.scores)} sub={`${fmtInt(totals.scores)} published`} testId="stat-scores-rate" title={rateTitle} />
        <Stat label="Leads scored" value={fmtInt(stream?.leads_scored)} sub={distribution.error ? "grade counts unavailable" : "\u00a0"} testId="stat-leads-scored" />
        <FeedStat />
      </div>
      <div className="ov-main">
        <section className="card ov-leaderboard" aria-labelledby="lb-title">
          <h2 id="lb-title">
            Leaderboard <span className="muted h-note">· best first, live</span>
          </h2>
          <MemoLeaderboard />
        </section>
        <div className="ov-side">
          <MemoDistributionCard />
          <section className="card ov-changes" aria-labelledby="nc-title">
            <h2 id="nc-title">Newest score changes</h2>
            <LiveChanges />
          </section>
        </div>
      </div>
    </section>
  );
}
