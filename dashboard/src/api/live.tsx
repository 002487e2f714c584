// The live feed: one WebSocket to /v1/stream per page, shared by every view.
//
// Score events are buffered and handed to React at most every FLUSH_MS, so a burst of
// thousands of events per second re-renders a few times a second, not thousands. On a
// flush the leaderboard and distribution queries are refreshed (at most every
// REFRESH_MS) and the queries of each lead that changed are refreshed at once. A dropped
// connection reconnects with `resume` from the last position handled, so nothing is
// missed across a short outage (docs/websocket.md).
import { useQueryClient } from "@tanstack/react-query";
import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";

import { getApiKey } from "./client";
import type { ScoreEvent } from "./types";

export type FeedStatus = "connecting" | "live" | "reconnecting" | "refused";

export interface LiveFeed {
  status: FeedStatus;
  /** Why the server refused or closed the feed, when it said. */
  detail: string | null;
  /** Newest first, at most RECENT_MAX. */
  recent: ScoreEvent[];
  /** Events the server dropped for this connection (it was too slow), as the server reported. */
  dropped: number;
  /** Score events received in the last 10 s, per second. */
  ratePerS: number;
}

const RECENT_MAX = 200;
const FLUSH_MS = 250;
const REFRESH_MS = 2000;

export interface FeedState {
  status: FeedStatus;
  detail: string | null;
  dropped: number;
}

// Three contexts, so that a view re-renders only for what it shows: the connection's state
// (changes rarely), the feed's rate and the recent events (each flush during traffic).
const StateContext = createContext<FeedState>({ status: "connecting", detail: null, dropped: 0 });
const RecentContext = createContext<ScoreEvent[]>([]);
const RateContext = createContext<number>(0);

export function useFeedState(): FeedState {
  return useContext(StateContext);
}

export function useRecentScores(): ScoreEvent[] {
  return useContext(RecentContext);
}

export function useFeedRate(): number {
  return useContext(RateContext);
}

/** Everything at once: re-renders on every flush, so only for small components. */
export function useLiveFeed(): LiveFeed {
  return { ...useFeedState(), recent: useRecentScores(), ratePerS: useFeedRate() };
}

export function feedUrl(location: Location, key: string, resume: string | null): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams({ api_key: key });
  if (resume) params.set("resume", resume);
  return `${scheme}//${location.host}/v1/stream?${params}`;
}

export function LiveFeedProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const [state, setFeed] = useState<FeedState>({ status: "connecting", detail: null, dropped: 0 });
  const [recent, setRecent] = useState<ScoreEvent[]>([]);
  const [rate, setRate] = useState(0);
  const pending = useRef<ScoreEvent[]>([]);

  useEffect(() => {
    let socket: WebSocket | null = null;
    let position: string | null = null;
    let stopped = false;
    let retryMs = 500;
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    let lastRefresh = 0;
    let listsStale = false;
    const seen = new Set<string>();

    const connect = () => {
      const key = getApiKey();
      if (!key || stopped) return;
      socket = new WebSocket(feedUrl(window.location, key, position));
      socket.onmessage = (message) => {
        let data: any;
        try {
          data = JSON.parse(message.data as string);
        } catch {
          return;
        }
        if (data.position) position = data.position;
        if (data.type === "hello") {
          retryMs = 500;
          setFeed((f) => (f.status === "live" && f.detail === null ? f : { ...f, status: "live", detail: null }));
        } else if (data.type === "score") {
          const event = data.data as ScoreEvent;
          if (seen.has(event.id)) return; // a resume replays from the gap: drop repeats by id
          seen.add(event.id);
          if (seen.size > 5000) seen.delete(seen.values().next().value as string);
          pending.current.push(event);
        } else if (data.type === "erased") {
          // A lead was erased: nothing of it stays on this page.
          const leadId = (data.data as { lead_id?: string }).lead_id;
          pending.current = pending.current.filter((e) => e.lead_id !== leadId);
          setRecent((events) => events.filter((e) => e.lead_id !== leadId));
          client.removeQueries({ queryKey: ["lead", leadId] });
          client.invalidateQueries({ queryKey: ["leaderboard"] });
          client.invalidateQueries({ queryKey: ["distribution"] });
        } else if (data.type === "dropped" || data.type === "resume_failed") {
          // Events were lost for this page: what it shows is refetched over REST.
          if (data.type === "dropped") setFeed((f) => ({ ...f, dropped: f.dropped + (Number(data.count) || 0) }));
          client.invalidateQueries({ queryKey: ["leaderboard"] });
          client.invalidateQueries({ queryKey: ["distribution"] });
          client.invalidateQueries({ queryKey: ["lead"] });
        } else if (data.type === "feed_interrupted") {
          // The API lost the broker: the connection stays, events resume after feed_restored.
          setFeed((f) => ({ ...f, status: "reconnecting", detail: data.message ?? "the server lost the broker" }));
        } else if (data.type === "feed_restored") {
          setFeed((f) => ({ ...f, status: "live", detail: null }));
          client.invalidateQueries({ queryKey: ["leaderboard"] });
          client.invalidateQueries({ queryKey: ["distribution"] });
          client.invalidateQueries({ queryKey: ["lead"] });
        } else if (data.type === "error") {
          const code = data.code ?? data.error?.code;
          const detail = data.message ?? data.error?.message ?? code ?? "the server closed the feed";
          const refused = code === "unauthenticated" || code === "forbidden";
          setFeed((f) => ({ ...f, status: refused ? "refused" : f.status, detail }));
          if (refused) stopped = true;
        }
      };
      socket.onclose = () => {
        socket = null;
        if (stopped) return;
        setFeed((f) => ({ ...f, status: f.status === "refused" ? "refused" : "reconnecting" }));
        retryTimer = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 10_000);
      };
    };

    // Events per flush over the last 10 s, for the rate: [time, count] pairs.
    const arrivals: [number, number][] = [];
    const flush = setInterval(() => {
      const now = Date.now();
      const batch = pending.current;
      pending.current = [];
      if (batch.length) arrivals.push([now, batch.length]);
      while (arrivals.length && now - arrivals[0][0] >= 10_000) arrivals.shift();
      if (batch.length) {
        // One pass over the query cache for every lead of the batch.
        const leads = new Set(batch.map((e) => e.lead_id));
        client.invalidateQueries({ predicate: (q) => q.queryKey[0] === "lead" && leads.has(q.queryKey[1] as string) });
        listsStale = true;
        const newest = batch.slice().reverse();
        setRecent((old) => [...newest, ...old].slice(0, RECENT_MAX));
      }
      // Throttled, with a trailing refresh: the last events of a burst are always shown.
      if (listsStale && now - lastRefresh >= REFRESH_MS) {
        listsStale = false;
        lastRefresh = now;
        client.invalidateQueries({ queryKey: ["leaderboard"] });
        client.invalidateQueries({ queryKey: ["distribution"] });
      }
      const perS = Math.round(arrivals.reduce((sum, [, n]) => sum + n, 0)) / 10;
      setRate((old) => (old === perS ? old : perS));
    }, FLUSH_MS);

    connect();
    return () => {
      stopped = true;
      clearInterval(flush);
      clearTimeout(retryTimer);
      socket?.close();
    };
  }, [client]);

  return (
    <StateContext.Provider value={state}>
      <RateContext.Provider value={rate}>
        <RecentContext.Provider value={recent}>{children}</RecentContext.Provider>
      </RateContext.Provider>
    </StateContext.Provider>
  );
}
