// The newest score changes as the live feed brings them: lead, old → new score, grade
// change, the top reason and when. Hovering the list holds it still so an item can be clicked.
import { memo, useRef, useState } from "react";
import { Link } from "react-router-dom";

import type { ScoreEvent } from "../api/types";
import { fmtAgo, fmtSigned } from "../format";
import { Empty } from "./states";
import { useNow } from "./useNow";
import "./overview.css";

/** The top reason of a score event: its largest change, or for a first score its largest reason. */
export function topReason(event: ScoreEvent): { label: string; delta: number; kind: "change" | "reason" } | null {
  const change = event.changes?.[0];
  if (change) return { label: change.label, delta: change.delta, kind: "change" };
  const reason = event.reasons?.[0];
  if (reason) return { label: reason.label, delta: reason.contribution, kind: "reason" };
  return null;
}

export const ChangeItem = memo(function ChangeItem({ event, now }: { event: ScoreEvent; now: number }) {
  const first = event.previous_score === null || event.previous_score === undefined;
  const delta = first ? 0 : event.score - (event.previous_score as number);
  const direction = delta > 0 ? "up" : delta < 0 ? "down" : "flat";
  const reason = topReason(event);
  const gradeChanged = !first && event.previous_grade && event.previous_grade !== event.grade;
  return (
    <li data-testid="change-item" data-lead-id={event.lead_id} data-event-id={event.id}>
      <Link to={`/leads/${encodeURIComponent(event.lead_id)}`} className="change-link">
        <span className="change-lead" title={event.lead_id}>
          {event.lead_id}
        </span>
        <span className={`change-score ${direction}`}>
          {first ? (
            <span className="muted">new</span>
          ) : (
            <>
              {event.previous_score} <span aria-hidden>{delta > 0 ? "▲" : delta < 0 ? "▼" : "→"}</span>
              <span className="sr-only">{delta > 0 ? "up to" : delta < 0 ? "down to" : "to"}</span>
            </>
          )}{" "}
          <strong>{event.score}</strong>
        </span>
        <span className="change-grade">
          {gradeChanged ? (
            <>
              <span className={`grade ${event.previous_grade}`}>{event.previous_grade}</span>
              <span aria-label="to">→</span>
            </>
          ) : null}
          <span className={`grade ${event.grade}`}>{event.grade}</span>
        </span>
        <span className="change-time muted" title={event.scored_at}>
          {fmtAgo(event.scored_at, now)}
        </span>
        <span className="change-reason muted">
          {reason ? (
            <>
              {reason.kind === "reason" ? "first score · " : ""}
              {reason.label}{" "}
              <span className={reason.delta >= 0 ? "up" : "down"}>{fmtSigned(reason.delta)}</span>
            </>
          ) : (
            "—"
          )}
        </span>
      </Link>
    </li>
  );
});

/** At most `max` of `events` (newest first). */
export function NewestChanges({ events, max = 40 }: { events: ScoreEvent[]; max?: number }) {
  const now = useNow(2000);
  const [held, setHeld] = useState<ScoreEvent[] | null>(null);
  const latest = useRef(events);
  latest.current = events;
  const shown = (held ?? events).slice(0, max);
  const waiting = held ? events.findIndex((e) => e.id === held[0]?.id) : 0;
  return (
    <div className="newest-changes" data-testid="newest-changes">
      <div className="nc-note muted" aria-live="off">
        {held ? `Paused while the pointer is on the list${waiting > 0 ? ` · ${waiting} newer` : ""}` : "Newest first · hover to pause"}
      </div>
      {shown.length === 0 ? (
        <Empty>Waiting for score changes from the live feed…</Empty>
      ) : (
        <ul
          className="nc-list"
          onMouseEnter={() => setHeld(latest.current)}
          onMouseLeave={() => setHeld(null)}
          onFocus={() => setHeld((h) => h ?? latest.current)}
          onBlur={(e) => {
            if (!e.currentTarget.contains(e.relatedTarget as Node)) setHeld(null);
          }}
        >
          {shown.map((event) => (
            <ChangeItem key={event.id} event={event} now={now} />
          ))}
        </ul>
      )}
    </div>
  );
}
