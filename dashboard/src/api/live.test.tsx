import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, render, screen } from "@testing-library/react";

import { setApiKey } from "./client";
import { feedUrl, LiveFeedProvider, useLiveFeed } from "./live";

class FakeSocket {
  static last: FakeSocket | null = null;
  static urls: string[] = [];
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.last = this;
    FakeSocket.urls.push(url);
  }
  send(message: object) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  close() {
    this.onclose?.();
  }
}

function score(id: string, lead: string, value: number) {
  return { type: "score", position: `p-${id}`, data: { id, lead_id: lead, score: value, type: "lead.scored" } };
}

function Probe() {
  const feed = useLiveFeed();
  return (
    <div>
      <span data-testid="status">{feed.status}</span>
      <span data-testid="recent">{feed.recent.map((e) => `${e.lead_id}:${e.score}`).join(",")}</span>
    </div>
  );
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.stubGlobal("WebSocket", FakeSocket);
  FakeSocket.urls = [];
  setApiKey("lsk_test");
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
  setApiKey(null);
});

it("builds the feed address from the page's own origin", () => {
  const url = feedUrl({ protocol: "https:", host: "scores.example.com" } as Location, "k", "v1.2");
  expect(url).toBe("wss://scores.example.com/v1/stream?api_key=k&resume=v1.2");
});

it("shows events newest first, drops repeats, refreshes queries, and resumes after a drop", async () => {
  const client = new QueryClient();
  client.setQueryData(["lead", "a"], { lead_id: "a" });
  client.setQueryData(["lead", "z"], { lead_id: "z" });
  const invalidate = vi.spyOn(client, "invalidateQueries");
  render(
    <QueryClientProvider client={client}>
      <LiveFeedProvider>
        <Probe />
      </LiveFeedProvider>
    </QueryClientProvider>,
  );
  const socket = FakeSocket.last!;
  act(() => {
    socket.send({ type: "hello", position: "p0" });
    socket.send(score("e1", "a", 10));
    socket.send(score("e1", "a", 10)); // a repeat (a resume replays from the gap)
    socket.send(score("e2", "b", 20));
  });
  await act(async () => {
    vi.advanceTimersByTime(300);
  });
  expect(screen.getByTestId("status")).toHaveTextContent("live");
  expect(screen.getByTestId("recent")).toHaveTextContent("b:20,a:10");
  expect(client.getQueryState(["lead", "a"])?.isInvalidated).toBe(true);
  expect(client.getQueryState(["lead", "z"])?.isInvalidated).toBe(false);
  expect(invalidate).toHaveBeenCalledWith({ queryKey: ["leaderboard"] });

  // A second event inside the throttle window still refreshes the lists, once the window ends.
  invalidate.mockClear();
  act(() => socket.send(score("e3", "c", 30)));
  await act(async () => {
    vi.advanceTimersByTime(300);
  });
  expect(invalidate).not.toHaveBeenCalledWith({ queryKey: ["leaderboard"] });
  await act(async () => {
    vi.advanceTimersByTime(2000);
  });
  expect(invalidate).toHaveBeenCalledWith({ queryKey: ["leaderboard"] });

  act(() => socket.close());
  expect(screen.getByTestId("status")).toHaveTextContent("reconnecting");
  await act(async () => {
    vi.advanceTimersByTime(600);
  });
  expect(FakeSocket.urls.at(-1)).toContain("resume=p-e3");
});

it("says when the server lost the broker, and refreshes when it is back", async () => {
  const client = new QueryClient();
  const invalidate = vi.spyOn(client, "invalidateQueries");
  function Detail() {
    const feed = useLiveFeed();
    return <span data-testid="detail">{feed.detail ?? ""}</span>;
  }
  render(
    <QueryClientProvider client={client}>
      <LiveFeedProvider>
        <Probe />
        <Detail />
      </LiveFeedProvider>
    </QueryClientProvider>,
  );
  const socket = FakeSocket.last!;
  act(() => socket.send({ type: "hello", position: "p0" }));
  expect(screen.getByTestId("status")).toHaveTextContent("live");
  act(() => socket.send({ type: "feed_interrupted", since: "2026-12-07T21:59:30+00:00", message: "lost the broker" }));
  expect(screen.getByTestId("status")).toHaveTextContent("reconnecting");
  expect(screen.getByTestId("detail")).toHaveTextContent("lost the broker");
  invalidate.mockClear();
  act(() => socket.send({ type: "feed_restored", interrupted_s: 3.2, position: "p1" }));
  expect(screen.getByTestId("status")).toHaveTextContent("live");
  expect(screen.getByTestId("detail")).toHaveTextContent("");
  expect(invalidate).toHaveBeenCalledWith({ queryKey: ["leaderboard"] });
  expect(FakeSocket.urls).toHaveLength(1); // the same connection throughout
});

it("forgets an erased lead: its events leave the page and its cached details go", async () => {
  const client = new QueryClient();
  client.setQueryData(["lead", "jane"], { lead_id: "jane" });
  render(
    <QueryClientProvider client={client}>
      <LiveFeedProvider>
        <Probe />
      </LiveFeedProvider>
    </QueryClientProvider>,
  );
  const socket = FakeSocket.last!;
  act(() => {
    socket.send({ type: "hello", position: "p0" });
    socket.send(score("e1", "jane", 40));
    socket.send(score("e2", "bob", 20));
  });
  await act(async () => {
    vi.advanceTimersByTime(300);
  });
  expect(screen.getByTestId("recent")).toHaveTextContent("bob:20,jane:40");
  act(() => {
    socket.send({ type: "erased", position: "p3", data: { type: "lead.erased", lead_id: "jane" } });
  });
  await act(async () => {
    vi.advanceTimersByTime(300);
  });
  expect(screen.getByTestId("recent")).toHaveTextContent("bob:20");
  expect(screen.getByTestId("recent")).not.toHaveTextContent("jane");
  expect(client.getQueryData(["lead", "jane"])).toBeUndefined();
});
