// A lead's score over event time, one dot per published score (the event that moved it),
// and a list of the last moves below.
import { CartesianGrid, Line, LineChart, ReferenceLine, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";

import type { ScoreEvent } from "../api/types";
import { eventLabel, fmtSigned, fmtTime, GRADE_COLORS } from "../format";
import { DEFAULT_THRESHOLDS, type Thresholds } from "./grades";
import { topReason } from "./NewestChanges";
import "./lead.css";

interface Point {
  t: number;
  score: number;
  event: ScoreEvent;
}

/** What moved the score, in words: "page viewed", or "event" for events published before `cause_event_type`. */
export function causeLabel(event: ScoreEvent): string {
  return event.cause_event_type ? eventLabel(event.cause_event_type) : "event";
}

function scoreDelta(event: ScoreEvent): string {
  return event.previous_score === null || event.previous_score === undefined ? "first score" : fmtSigned(event.score - event.previous_score, 0);
}

/** History events (newest first, as the API answers) as points in event-time order. */
export function historyPoints(scores: ScoreEvent[]): Point[] {
  return scores
    .map((event) => ({ t: Date.parse(event.event_time), score: event.score, event }))
    .filter((p) => !Number.isNaN(p.t))
    .sort((a, b) => a.t - b.t);
}

function PointTooltip({ active, payload }: { active?: boolean; payload?: { payload: Point }[] }) {
  const point = payload?.[0]?.payload;
  if (!active || !point) return null;
  const { event } = point;
  const reason = topReason(event);
  return (
    <div className="chart-tooltip">
      <div>
        <strong>{event.score}</strong> <span className={`grade ${event.grade}`}>{event.grade}</span> ({scoreDelta(event)})
      </div>
      <div className="muted">
        {causeLabel(event)} · {fmtTime(event.event_time)}
      </div>
      {reason && (
        <div>
          {reason.label} <span className={reason.delta >= 0 ? "up" : "down"}>{fmtSigned(reason.delta)}</span>
        </div>
      )}
    </div>
  );
}

function shortDate(t: number): string {
  return new Date(t).toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
}

export function ScoreHistoryChart({ scores, thresholds = DEFAULT_THRESHOLDS, moves = 8 }: { scores: ScoreEvent[]; thresholds?: Thresholds; moves?: number }) {
  const points = historyPoints(scores);
  const newest = [...points].reverse().slice(0, moves);
  const cutoffs = Object.entries(thresholds).filter((e): e is [string, number] => typeof e[1] === "number");
  const single = points.length === 1;
  return (
    <div className="score-history" data-testid="score-history">
      <div role="img" aria-label={`Score history: ${points.length} published scores`}>
        <ResponsiveContainer width="100%" height={220}>
          <LineChart data={points} margin={{ top: 8, right: 24, bottom: 0, left: 0 }}>
            <CartesianGrid stroke="#eef2f7" vertical={false} />
            <XAxis
              dataKey="t"
              type="number"
              scale="time"
              domain={single ? [points[0].t - 3_600_000, points[0].t + 3_600_000] : ["dataMin", "dataMax"]}
              tickFormatter={shortDate}
              tick={{ fontSize: 11, fill: "#64748b" }}
              minTickGap={40}
            />
            <YAxis domain={[0, 100]} ticks={[0, 20, 40, 60, 80, 100]} tick={{ fontSize: 11, fill: "#64748b" }} width={32} />
            {cutoffs.map(([grade, cutoff]) => (
              <ReferenceLine
                key={grade}
                y={cutoff}
                stroke={GRADE_COLORS[grade as keyof typeof GRADE_COLORS] ?? "#94a3b8"}
                strokeDasharray="4 4"
                label={{ value: grade, position: "right", fontSize: 10, fill: "#64748b" }}
              />
            ))}
            <Tooltip content={<PointTooltip />} />
            <Line
              type="stepAfter"
              dataKey="score"
              stroke="#334155"
              strokeWidth={1.5}
              isAnimationActive={false}
              dot={(props: { cx?: number; cy?: number; payload?: Point; index?: number }) => (
                <circle
                  key={props.payload?.event.id ?? props.index}
                  cx={props.cx}
                  cy={props.cy}
                  r={3.5}
                  fill={props.payload ? GRADE_COLORS[props.payload.event.grade] : "#334155"}
                  stroke="#fff"
                  strokeWidth={1}
                />
              )}
              activeDot={{ r: 6 }}
            />
          </LineChart>
        </ResponsiveContainer>
      </div>
      <h3 className="moves-title">Last moves</h3>
      <table className="data moves" data-testid="score-moves">
        <thead>
          <tr>
            <th>Event time</th>
            <th>Caused by</th>
            <th className="num">Score</th>
            <th>Top change</th>
          </tr>
        </thead>
        <tbody>
          {newest.map(({ event }) => {
            const reason = topReason(event);
            const first = event.previous_score === null || event.previous_score === undefined;
            const delta = first ? 0 : event.score - (event.previous_score as number);
            return (
              <tr key={event.id}>
                <td className="muted nowrap">{fmtTime(event.event_time)}</td>
                <td>{causeLabel(event)}</td>
                <td className="num nowrap">
                  {first ? "" : `${event.previous_score} → `}
                  <strong>{event.score}</strong>{" "}
                  <span className={delta > 0 ? "up" : delta < 0 ? "down" : "muted"}>({scoreDelta(event)})</span>
                </td>
                <td className="ellipsis" title={reason?.label}>
                  {reason ? (
                    <>
                      {reason.label} <span className={reason.delta >= 0 ? "up" : "down"}>{fmtSigned(reason.delta)}</span>
                    </>
                  ) : (
                    "—"
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
