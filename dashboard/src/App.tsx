// The shell: header with the tabs, the live-feed status and the signed-in key; the routes.
import { NavLink, Route, Routes, useNavigate } from "react-router-dom";
import { useState, type FormEvent } from "react";

import { setApiKey } from "./api/client";
import { useWhoAmI } from "./api/hooks";
import { LiveFeedProvider, useFeedState } from "./api/live";
import { RequireKey } from "./auth";
import { Batch } from "./pages/Batch";
import { LeadView } from "./pages/Lead";
import { Models } from "./pages/Models";
import { NotFound } from "./pages/NotFound";
import { Overview } from "./pages/Overview";
import { TrendsView } from "./pages/Trends";

const STATUS_TEXT = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", refused: "feed refused" };

function FeedStatus() {
  const feed = useFeedState();
  return (
    <span className={`feed-status ${feed.status}`} title={feed.detail ?? undefined} data-testid="feed-status">
      <span className="dot" aria-hidden /> {STATUS_TEXT[feed.status]}
    </span>
  );
}

function LeadSearch() {
  const [id, setId] = useState("");
  const navigate = useNavigate();
  function onSubmit(event: FormEvent) {
    event.preventDefault();
    if (id.trim()) navigate(`/leads/${encodeURIComponent(id.trim())}`);
  }
  return (
    <form className="lead-search" onSubmit={onSubmit} role="search">
      <input aria-label="Find a lead by id" placeholder="Lead id…" value={id} onChange={(e) => setId(e.target.value)} />
    </form>
  );
}

function KeyMenu() {
  const me = useWhoAmI();
  return (
    <span className="key-menu">
      <span className="muted" title={me.data ? `scopes: ${me.data.scopes.join(", ")}` : undefined}>
        {me.data ? `${me.data.name} (${me.data.scopes.join(", ")})` : ""}
      </span>
      <button type="button" className="link" onClick={() => setApiKey(null)}>
        Sign out
      </button>
    </span>
  );
}

function Shell() {
  const tabs: [string, string][] = [
    ["/", "Overview"],
    ["/trends", "Trends"],
    ["/models", "Models"],
    ["/batch", "Batch"],
  ];
  return (
    <LiveFeedProvider>
      <header className="top">
        <span className="brand">leadscore</span>
        <nav aria-label="Main">
          {tabs.map(([to, label]) => (
            <NavLink key={to} to={to} end={to === "/"} className={({ isActive }) => (isActive ? "tab active" : "tab")}>
              {label}
            </NavLink>
          ))}
        </nav>
        <LeadSearch />
        <FeedStatus />
        <KeyMenu />
      </header>
      <main className="content">
        <Routes>
          <Route path="/" element={<Overview />} />
          <Route path="/leads/:leadId" element={<LeadView />} />
          <Route path="/trends" element={<TrendsView />} />
          <Route path="/models/*" element={<Models />} />
          <Route path="/batch" element={<Batch />} />
          <Route path="*" element={<NotFound />} />
        </Routes>
      </main>
    </LiveFeedProvider>
  );
}

export function App() {
  return (
    <RequireKey>
      <Shell />
    </RequireKey>
  );
}
