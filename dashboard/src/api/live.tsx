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

const LiveFeedContext = createContext<LiveFeed>({ status: "connecting", detail: null, recent: [], dropped: 0, ratePerS: 0 });

export function useLiveFeed(): LiveFeed {
  return useContext(LiveFeedContext);
}

export function feedUrl(location: Location, key: string, resume: string | null): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams({ api_key: key });
  if (resume) params.set("resume", resume);
  return `${scheme}//${location.host}/v1/stream?${params}`;
}

export function LiveFeedProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const [feed, setFeed] = useState<LiveFeed>({ status: "connecting", detail: null, recent: [], dropped: 0, ratePerS: 0 });
  const pending = useRef<ScoreEvent[]>([]);
  const arrivals = useRef<number[]>([]);

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
          setFeed((f) => ({ ...f, status: "live", detail: null }));
        } else if (data.type === "score") {
          const event = data.data as ScoreEvent;
          if (seen.has(event.id)) return; // a resume replays from the gap: drop repeats by id
          seen.add(event.id);
          if (seen.size > 5000) seen.delete(seen.values().next().value as string);
          pending.current.push(event);
          arrivals.current.push(Date.now());
        } else if (data.type === "dropped" || data.type === "resume_failed") {
          // Events were lost for this page: what it shows is refetched over REST.
          if (data.type === "dropped") setFeed((f) => ({ ...f, dropped: f.dropped + (Number(data.count) || 0) }));
          client.invalidateQueries();
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

    const flush = setInterval(() => {
      const now = Date.now();
      arrivals.current = arrivals.current.filter((t) => now - t < 10_000);
      const batch = pending.current;
      pending.current = [];
      if (batch.length) {
        const leads = new Set(batch.map((e) => e.lead_id));
        leads.forEach((id) => client.invalidateQueries({ queryKey: ["lead", id] }));
        listsStale = true;
      }
      // Throttled, with a trailing refresh: the last events of a burst are always shown.
      if (listsStale && now - lastRefresh >= REFRESH_MS) {
        listsStale = false;
        lastRefresh = now;
        client.invalidateQueries({ queryKey: ["leaderboard"] });
        client.invalidateQueries({ queryKey: ["distribution"] });
      }
      setFeed((f) => {
        const rate = arrivals.current.length / 10;
        if (!batch.length && rate === f.ratePerS) return f;
        const recent = batch.length ? [...batch.reverse(), ...f.recent].slice(0, RECENT_MAX) : f.recent;
        return { ...f, recent, ratePerS: rate };
      });
    }, FLUSH_MS);

    connect();
    return () => {
      stopped = true;
      clearInterval(flush);
      clearTimeout(retryTimer);
      socket?.close();
    };
  }, [client]);

  return <LiveFeedContext.Provider value={feed}>{children}</LiveFeedContext.Provider>;
}
