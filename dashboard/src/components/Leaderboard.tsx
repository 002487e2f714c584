// The live leaderboard: server-side pages of 100 from GET /v1/leads/top, drawn as a
// virtualized table. The live feed refreshes the page every 2 s; rows are positioned by
// index inside a scroller that stays mounted, so a refresh never moves the scroll position.
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef, useState } from "react";
import { Link, useNavigate } from "react-router-dom";

import { useLeaderboard } from "../api/hooks";
import type { LeaderboardEntry } from "../api/types";
import { fmtAgo, fmtInt, shortVersion } from "../format";
import { Empty, ErrorState, Loading } from "./states";
import { useNow } from "./useNow";
import "./overview.css";

export const PAGE_SIZE = 100;
const ROW_HEIGHT = 36;

export function NoScoresYet() {
  return (
    <Empty>
      <strong>No lead has a score yet.</strong> Scores appear here as soon as the worker publishes them. Start your
      producers (or simulated traffic: <code>leadscore simulate --rate 50</code>), or run the whole demo with{" "}
      <code>make demo</code>.
    </Empty>
  );
}

function Row({ lead, top, now, moved }: { lead: LeaderboardEntry; top: number; now: number; moved: boolean }) {
  const navigate = useNavigate();
  return (
    <div
      role="row"
      aria-rowindex={lead.rank + 1}
      className={`lb-row${moved ? " flash" : ""}`}
      style={{ transform: `translateY(${top}px)` }}
      data-testid="leaderboard-row"
      data-lead-id={lead.lead_id}
      onClick={(e) => {
        if (!(e.target as HTMLElement).closest("a")) navigate(`/leads/${encodeURIComponent(lead.lead_id)}`);
      }}
    >
      <span role="cell" className="num lb-rank">
        {fmtInt(lead.rank)}
      </span>
      <span role="cell" className="lb-id">
        <Link to={`/leads/${encodeURIComponent(lead.lead_id)}`} title={lead.lead_id}>
          {lead.lead_id}
        </Link>
      </span>
      <span role="cell" className="num lb-score">
        {lead.score}
      </span>
      <span role="cell">{lead.grade ? <span className={`grade ${lead.grade}`}>{lead.grade}</span> : "—"}</span>
      <span role="cell" className="muted" title={lead.scored_at ?? undefined}>
        {fmtAgo(lead.scored_at, now)}
      </span>
      <span role="cell" className="mono muted lb-model" title={lead.model_version ?? undefined}>
        {shortVersion(lead.model_version)}
      </span>
    </div>
  );
}

export function Leaderboard({ height = 468 }: { height?: number }) {
  const [page, setPage] = useState(0);
  // What the person is typing in the page box, until it leaves the box.
  const [draft, setDraft] = useState<string | null>(null);
  const query = useLeaderboard(page * PAGE_SIZE, PAGE_SIZE);
  const scroller = useRef<HTMLDivElement>(null);
  const now = useNow(5000);
  const leads = query.data?.leads ?? [];
  const total = query.data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));

  // Scores seen on the previous refresh, to mark the rows whose score just moved.
  const lastScores = useRef(new Map<string, number>());
  const moved = new Set<string>();
  for (const lead of leads) {
    const before = lastScores.current.get(lead.lead_id);
    if (before !== undefined && before !== lead.score) moved.add(lead.lead_id);
  }
  useEffect(() => {
    lastScores.current = new Map(leads.map((l) => [l.lead_id, l.score]));
  }, [leads]);

  // The list shrank below this page (leads expire): go back to the last page that exists.
  useEffect(() => {
    if (query.data && page > 0 && page >= pages) setPage(pages - 1);
  }, [query.data, page, pages]);

  const virtualizer = useVirtualizer({
    count: leads.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
    getItemKey: (index) => index,
  });

  function goTo(next: number, fromBox = false) {
    if (!fromBox) setDraft(null);
    setPage(next);
    if (scroller.current) scroller.current.scrollTop = 0;
  }

  const first = page * PAGE_SIZE + 1;
  const last = Math.min(total, (page + 1) * PAGE_SIZE);
  return (
    <div className="leaderboard" data-testid="leaderboard">
      <div className="lb-toolbar">
        <span className="muted" data-testid="leaderboard-range">
          {total ? `${fmtInt(first)}–${fmtInt(last)} of ${fmtInt(total)} leads` : query.isFetching ? "" : "0 leads"}
        </span>
        <span className="lb-pager">
          <button type="button" className="secondary" onClick={() => goTo(page - 1)} disabled={page === 0} aria-label="Previous page">
            ‹ Prev
          </button>
          <label className="muted lb-page">
            page{" "}
            <input
              type="number"
              min={1}
              max={pages}
              value={draft ?? page + 1}
              aria-label="Page number"
              onChange={(e) => {
                setDraft(e.target.value);
                const wanted = Math.round(Number(e.target.value));
                if (e.target.value !== "" && wanted >= 1 && wanted <= pages) goTo(wanted - 1, true);
              }}
              onBlur={() => setDraft(null)}
            />{" "}
            of {fmtInt(pages)}
          </label>
          <button type="button" className="secondary" onClick={() => goTo(page + 1)} disabled={page + 1 >= pages} aria-label="Next page">
            Next ›
          </button>
        </span>
      </div>
      {query.error && query.data === undefined ? (
        <ErrorState error={query.error} retry={() => query.refetch()} />
      ) : query.data === undefined ? (
        <Loading what="Loading the leaderboard" />
      ) : total === 0 ? (
        <NoScoresYet />
      ) : (
        <div role="table" aria-label="Leads by score, best first" aria-rowcount={total + 1} className="lb-table">
          <div role="rowgroup" className="lb-head-group">
            <div role="row" aria-rowindex={1} className="lb-row lb-head">
              <span role="columnheader" className="num">#</span>
              <span role="columnheader">Lead</span>
              <span role="columnheader" className="num">Score</span>
              <span role="columnheader">Grade</span>
              <span role="columnheader">Scored</span>
              <span role="columnheader">Model</span>
            </div>
          </div>
          <div role="rowgroup" ref={scroller} className="lb-scroll" style={{ height }}>
            <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
              {virtualizer.getVirtualItems().map((item) => {
                const lead = leads[item.index];
                return lead ? <Row key={item.key} lead={lead} top={item.start} now={now} moved={moved.has(lead.lead_id)} /> : null;
              })}
            </div>
          </div>
          {query.error ? <p className="muted lb-stale">Could not refresh ({(query.error as Error).message}); showing the last answer.</p> : null}
        </div>
      )}
    </div>
  );
}
