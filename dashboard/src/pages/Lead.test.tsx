import { screen, waitFor, within } from "@testing-library/react";

import { fmtSigned } from "../format";
import { fakeLayout, renderWithApi, scoreEvent, stubApi } from "../test/leadscoreApi";
import { LeadView } from "./Lead";

const ID = "sim-6b09b2d7-0-000102";

function renderLead(id = ID) {
  return renderWithApi(<LeadView />, { path: `/leads/${id}`, route: "/leads/:leadId" });
}

const notFound = (message: string) => ({ status: 404, body: { error: { code: "unknown_lead", message } } });

describe("<LeadView>", () => {
  beforeEach(() => fakeLayout(900, 400));
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllGlobals();
  });

  it("says clearly when no lead with this id has a score", async () => {
    stubApi([
      ["/v1/leads/nope/score", notFound("lead 'nope' has no published score yet")],
      ["/v1/leads/nope/*", notFound("lead 'nope' is unknown")],
      ["/v1/leads/nope", notFound("lead 'nope' is unknown")],
      ["/v1/metrics/performance", { body: { model: { version: null, champion: null }, stream: {}, api: {}, feed: {} } }],
    ]);
    renderLead("nope");
    const state = await screen.findByTestId("lead-not-found");
    expect(state).toHaveTextContent("No lead with the id “nope” has a score");
    expect(within(state).getByRole("link", { name: "leaderboard" })).toHaveAttribute("href", "/");
    expect(screen.queryByTestId("lead-score")).toBeNull();
  });

  it("shows score, grade, waterfall and changes matching the score event; activity 404 is a quiet note", async () => {
    const event = scoreEvent();
    const history = [event, scoreEvent({ id: "sc_prev", score: 77, grade: "B", previous_score: 69, previous_grade: "B", event_time: "2026-11-10T11:00:00Z", cause_event_type: null })];
    stubApi([
      [`/v1/leads/${ID}/score`, { body: event }],
      [`/v1/leads/${ID}/history`, { body: { lead_id: ID, scores: history } }],
      [`/v1/leads/${ID}/activity`, notFound("Not Found")],
      [
        `/v1/leads/${ID}`,
        {
          body: {
            lead_id: ID,
            score: event,
            state: {
              lead_id: ID,
              first_event_t: 1793463624.126,
              last_event_t: 1794360499.541,
              first_activity_t: 1793463654.019,
              last_activity_t: 1794360499.541,
              counts: { "lead.page_viewed": 83, "lead.call_logged": 5 },
              page_seconds: 5212.8,
              high_intent_views: 29,
              calls_answered: 3,
              call_seconds: 1575.1,
              assets: ["a", "b"],
              active_days: [20757, 20761],
              profile: { job_title: "VP of Sales", company_size: 142, contact_fields: { email: true, phone: false } },
              outcome: null,
              outcome_t: null,
              score: 83,
              grade: "A",
              model_version: event.model_version,
            },
          },
        },
      ],
      ["/v1/metrics/performance", { body: { model: { version: "v", champion: "v", metrics: { roc_auc: 0.775 } }, stream: {}, api: {}, feed: {} } }],
    ]);
    renderLead();
    expect(await screen.findByTestId("lead-score")).toHaveTextContent("83");
    expect(screen.getByTestId("lead-grade")).toHaveTextContent("A");
    expect(screen.getByTestId("lead-probability")).toHaveTextContent("82.7 %");
    expect(screen.getByTestId("base-score")).toHaveTextContent("11.1");

    // Waterfall rows carry the event's contributions, one decimal; base + rows = 100 × probability.
    const rows = screen.getAllByTestId("waterfall-row");
    for (const reason of event.reasons) {
      const row = rows.find((r) => r.dataset.feature === reason.feature)!;
      expect(within(row).getByTestId("waterfall-contribution")).toHaveTextContent(fmtSigned(reason.contribution));
    }
    const other = rows.find((r) => r.dataset.feature === "other")!;
    const shown = event.reasons.reduce((sum, r) => sum + r.contribution, 0);
    expect(within(other).getByTestId("waterfall-contribution")).toHaveTextContent(fmtSigned(100 * event.probability - event.base_score - shown));

    // Confidence says what it measures: 82.7 is 2.7 points above the A cut-off.
    expect(screen.getByTestId("confidence")).toHaveTextContent("Borderline grade");
    expect(screen.getByTestId("confidence")).toHaveTextContent("2.7 points above the A cut-off (80)");
    expect(await screen.findByText(/ROC-AUC, cross-validated\): 0.78/)).toBeInTheDocument();

    const changed = screen.getByTestId("what-changed");
    expect(changed).toHaveTextContent("Score 77 → 83 (+6)");
    expect(within(changed).getAllByTestId("change-row")[0]).toHaveTextContent("+9.8");

    expect(screen.getByTestId("sub-scores")).toHaveTextContent("+8.2");
    expect(await screen.findByTestId("score-moves")).toHaveTextContent("call logged");
    expect(screen.getByTestId("score-moves")).toHaveTextContent("event"); // no cause_event_type
    expect(await screen.findByTestId("lead-profile")).toHaveTextContent("VP of Sales");
    expect(screen.getByTestId("lead-profile")).toHaveTextContent("email (missing: phone)");
    expect(await screen.findByTestId("activity-unavailable")).toHaveTextContent("Recent activity is not available");
  });

  it("shows the profile of a known lead that has no score yet", async () => {
    stubApi([
      ["/v1/leads/new-lead/score", notFound("lead 'new-lead' has no published score yet")],
      ["/v1/leads/new-lead/*", notFound("lead 'new-lead' has no published score yet")],
      [
        "/v1/leads/new-lead",
        {
          body: {
            lead_id: "new-lead",
            score: null,
            state: { lead_id: "new-lead", counts: {}, profile: { job_title: "CTO" }, first_event_t: 1793463624.126, last_activity_t: null, active_days: [], assets: [] },
          },
        },
      ],
    ]);
    renderLead("new-lead");
    expect(await screen.findByTestId("lead-not-found")).toHaveTextContent("This lead has no published score yet");
    expect(screen.getByTestId("lead-profile")).toHaveTextContent("CTO");
  });

  it("refreshes when the live feed invalidates the lead's queries", async () => {
    let current = scoreEvent();
    stubApi([
      [`/v1/leads/${ID}/score`, () => ({ body: current })],
      [`/v1/leads/${ID}/history`, () => ({ body: { lead_id: ID, scores: [current] } })],
      [`/v1/leads/${ID}/activity`, { body: { lead_id: ID, events: [] } }],
      [`/v1/leads/${ID}`, () => ({ body: { lead_id: ID, score: current, state: null } })],
    ]);
    const { client } = renderLead();
    expect(await screen.findByTestId("lead-score")).toHaveTextContent("83");
    current = scoreEvent({ id: "sc_next", score: 58, probability: 0.5812, grade: "C", previous_score: 83, previous_grade: "A" });
    await client.invalidateQueries({ queryKey: ["lead", ID] }); // what live.tsx does for a lead in the feed
    await waitFor(() => expect(screen.getByTestId("lead-score")).toHaveTextContent("58"));
    expect(screen.getByTestId("lead-grade")).toHaveTextContent("C");
    expect(screen.getByTestId("waterfall-final")).toHaveTextContent("58.1");
  });

  it("shows 'first score' when the event has no previous score", async () => {
    const event = scoreEvent({ previous_score: null, previous_grade: null, changes: [] });
    stubApi([
      [`/v1/leads/${ID}/score`, { body: event }],
      [`/v1/leads/${ID}/history`, { body: { lead_id: ID, scores: [event] } }],
      [`/v1/leads/${ID}/activity`, { body: { lead_id: ID, events: [{ id: "e1", type: "lead.page_viewed", time: "2026-11-10T22:00:00Z", data: { url: "/pricing" } }] } }],
      [`/v1/leads/${ID}`, { body: { lead_id: ID, score: event, state: null } }],
    ]);
    renderLead();
    expect(await screen.findByTestId("what-changed")).toHaveTextContent("First score");
    expect(await screen.findByTestId("lead-activity")).toHaveTextContent("page viewed");
    expect(screen.getByTestId("lead-activity")).toHaveTextContent("url: /pricing");
  });
});
