// Trends: how scores, grades, factor families and conversions move over event time
// (GET /v1/trends), per hour, day or week.
import { useMemo, useState } from "react";

import { ApiError } from "../api/client";
import { useTrends } from "../api/hooks";
import { Caption, Segmented } from "../components/kit/kit";
import { Empty, ErrorState, Loading } from "../components/states";
import {
  ConversionChart,
  ConversionTable,
  FamilyChart,
  ScoreShareChart,
  VolumeChart,
} from "../components/trends/TrendCharts";
import {
  conversionRows,
  familyRows,
  shareRows,
  trimLeadingEmpty,
  type BucketName,
  type TrendsAnswer,
} from "../components/trends/trendsMath";
import "../components/trends/trends.css";
import { fmtInt, fmtPct, fmtTime } from "../format";

type RangeName = "7" | "30" | "90" | "all";

const DAY_MS = 86_400_000;
/** "All" reaches this far back (the API lists at most 5000 buckets per answer). */
const ALL_DAYS = 365;
const RANGE_DAYS: Record<RangeName, number> = { "7": 7, "30": 30, "90": 90, all: ALL_DAYS };
/** Hour buckets beyond 30 days are too many bars to read (and up to 2,000 buckets a minute). */
const HOUR_MAX_DAYS = 30;

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function TrendsView() {
  const [bucket, setBucket] = useState<BucketName>("day");
  const [range, setRange] = useState<RangeName>("30");
  // Ranges end at the newest data, as the API's default range (30 days) does: the other
  // ranges start that many days before the `until` of the last answer.
  const [anchor, setAnchor] = useState<string | null>(null);

  const since =
    range === "30" ? undefined : isoSeconds((anchor ? Date.parse(anchor) : Date.now()) - RANGE_DAYS[range] * DAY_MS);

  const trends = useTrends(bucket, since);

  const data = trends.data;
  if (data?.until && data.until !== anchor && !trends.isPlaceholderData) setAnchor(data.until);

  const view = useMemo(() => {
    if (!data) return null;
    const buckets = range === "all" ? trimLeadingEmpty(data.buckets) : data.buckets;
    const conversion = conversionRows(data.totals.outcomes);
    const scores = data.totals.scores ?? buckets.reduce((sum, b) => sum + b.scores, 0);
    return {
      buckets,
      scores,
      shares: shareRows(buckets, bucket),
      families: familyRows(buckets, bucket),
      conversion,
    };
  }, [data, range, bucket]);

  const toolbar = (
    <div className="toolbar trends-toolbar">
      <Segmented<BucketName>
        label="Bucket"
        value={bucket}
        onChange={setBucket}
        options={[
          {
            value: "hour",
            label: "Hour",
            disabled: RANGE_DAYS[range] > HOUR_MAX_DAYS,
            title: RANGE_DAYS[range] > HOUR_MAX_DAYS ? `hour buckets: ranges up to ${HOUR_MAX_DAYS} days` : undefined,
          },
          { value: "day", label: "Day" },
          { value: "week", label: "Week" },
        ]}
      />
      <Segmented<RangeName>
        label="Range"
        value={range}
        onChange={setRange}
        options={(["7", "30", "90", "all"] as RangeName[]).map((r) => ({
          value: r,
          label: r === "all" ? "All" : `Last ${r} days`,
          disabled: bucket === "hour" && RANGE_DAYS[r] > HOUR_MAX_DAYS,
          title:
            r === "all"
              ? `everything in the last ${ALL_DAYS} days of data`
              : bucket === "hour" && RANGE_DAYS[r] > HOUR_MAX_DAYS
                ? `hour buckets: ranges up to ${HOUR_MAX_DAYS} days; pick Day or Week`
                : undefined,
        }))}
      />
      {trends.isFetching && <span className="muted kit-small">updating…</span>}
      {data?.since && data.until && (
        <span className="muted kit-small range-text">
          {fmtTime(data.since)} → {fmtTime(data.until)} · event time, UTC · ranges end at the newest scored event
        </span>
      )}
    </div>
  );

  let body;
  if (trends.error && !data) {
    const notThere = trends.error instanceof ApiError && trends.error.status === 404;
    body = notThere ? (
      <div className="state error" role="alert">
        <strong>Trends are not available from this API yet</strong> (GET /v1/trends answered 404). They need a{" "}
        <code>leadscore api</code> with the trends route and a worker that records trend buckets; the other tabs work
        without them.{" "}
        <button type="button" className="link" onClick={() => trends.refetch()}>
          Try again
        </button>
      </div>
    ) : (
      <ErrorState error={trends.error} retry={() => trends.refetch()} />
    );
  } else if (!view) {
    body = <Loading what="Loading trends" />;
  } else if (view.scores === 0 && view.conversion.overall.n === 0) {
    body = (
      <Empty>
        No scores or outcomes in this range. Scores are counted by the time of the event that caused them; try a longer
        range, or check that the worker is running (<code>leadscore worker</code>).
      </Empty>
    );
  } else {
    body = <TrendsBody view={view} />;
  }

  return (
    <section className="trends">
      <h1>Trends</h1>
      {toolbar}
      {body}
    </section>
  );
}

type View = {
  buckets: TrendsAnswer["buckets"];
  scores: number;
  shares: ReturnType<typeof shareRows>;
  families: ReturnType<typeof familyRows>;
  conversion: ReturnType<typeof conversionRows>;
};

function TrendsBody({ view }: { view: View }) {
  const { conversion } = view;
  return (
    <div className="grid">
      <div className="grid cols-3 trends-stats">
        <div className="card stat">
          <span className="label">Scores published in range</span>
          <span className="value">{fmtInt(view.scores)}</span>
        </div>
        <div className="card stat">
          <span className="label">Leads with an outcome in range</span>
          <span className="value">{fmtInt(conversion.overall.n)}</span>
        </div>
        <div className="card stat">
          <span className="label">Of them converted</span>
          <span className="value">
            {fmtPct(conversion.overall.rate, 1)}{" "}
            <span className="muted kit-small">({fmtInt(conversion.overall.converted)})</span>
          </span>
        </div>
      </div>

      <div className="card">
        <h2>Score distribution over time</h2>
        <Caption>
          Scores published in each bucket, by the time of the event that caused them: bars are each grade&apos;s share,
          the lines are the median and mean score (estimated from 10-point bins); the grey bars below count the scores.
        </Caption>
        {view.scores > 0 ? (
          <>
            <ScoreShareChart rows={view.shares} />
            <VolumeChart rows={view.shares} />
          </>
        ) : (
          <Empty>No scores published in this range.</Empty>
        )}
      </div>

      <div className="grid cols-2">
        <div className="card">
          <h2>Conversion by grade</h2>
          <Caption>
            Leads whose first outcome (converted or disqualified) falls in the range, by the grade they had when it
            arrived; lift is the grade&apos;s rate over the overall rate.
          </Caption>
          {conversion.overall.n > 0 ? (
            <>
              <ConversionChart rows={conversion.rows} overall={conversion.overall.rate} />
              <ConversionTable rows={conversion.rows} overall={conversion.overall} />
            </>
          ) : (
            <Empty>No outcomes in this range yet: conversions are counted when a lead converts or is disqualified.</Empty>
          )}
        </div>
        <div className="card">
          <h2>Factor families over time</h2>
          <Caption>
            Mean points each family of factors added to the scores published in the bucket (below 0: it pulled scores
            down).
          </Caption>
          {view.families.families.length > 0 ? (
            <FamilyChart rows={view.families.rows} families={view.families.families} />
          ) : (
            <Empty>No score in this range carried its components.</Empty>
          )}
        </div>
      </div>
    </div>
  );
}
