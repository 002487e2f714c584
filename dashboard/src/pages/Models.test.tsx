import { configure, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Route, Routes } from "react-router-dom";

import { renderPage, routeApi, whoami } from "../test/pagesApi";
import { Models } from "./Models";

// Pages with charts render slowly in jsdom on a busy machine: give each test room.
vi.setConfig({ testTimeout: 20_000 });
configure({ asyncUtilTimeout: 5_000 });

const V1 = "20261127T164136Z-432b18";
const V2 = "20261127T170000Z-aaaaaa";

const modelList = {
  champion: V1,
  serving: V1,
  models: [
    { version: V1, created_at: "2026-11-27T16:41:36Z", kind: "lead_events", variant: "ensemble", n_rows: 5321, roc_auc: 0.775, accuracy: 0.852, champion: true, problem: null },
    { version: V2, created_at: "2026-11-27T17:00:00Z", kind: "lead_events", variant: "hgb", n_rows: 6000, roc_auc: 0.79, accuracy: 0.86, champion: false, problem: null },
  ],
};

const modelDetail = (version: string) => ({
  manifest: {
    version,
    kind: "lead_events",
    variant: "ensemble",
    created_at: "2026-11-27T16:41:36Z",
    source: "simulated: 2500 leads, seed 0",
    n_rows: 5321,
    class_balance: { negative: 4562, positive: 759, positive_rate: 0.1426 },
    training_window: { start: "2026-07-30T17:34:05Z", end: "2026-11-27T16:40:36Z" },
    feature_names: ["a", "b"],
    metrics: {
      variant: "ensemble",
      cv: { roc_auc: 0.7751, accuracy: 0.8523, brier: 0.1059, std: { roc_auc: 0.0175, accuracy: 0.0055, brier: 0.0027 } },
      cv_scheme: { scheme: "stratified_group_kfold", folds: 3 },
    },
  },
  report: {
    chosen: { name: "ensemble", reason: "the default 40/40/20 ensemble" },
    models: [{ name: "ensemble", deployable: true, cv: { roc_auc: 0.775, brier: 0.106, std: { roc_auc: 0.017 } } }],
    warnings: [],
    feature_importance: [{ feature: "behavioral_recent", importance: 0.6 }],
  },
});

function api(scope: "read" | "admin", extra: Parameters<typeof routeApi>[0] = {}) {
  return routeApi({
    "/v1/whoami": { body: whoami(scope) },
    "/v1/models": { body: modelList },
    [`/v1/models/${V1}`]: { body: modelDetail(V1) },
    [`/v1/models/${V2}`]: { body: modelDetail(V2) },
    ...extra,
  });
}

function renderModels(path: string) {
  return renderPage(
    <Routes>
      <Route path="/models/*" element={<Models />} />
    </Routes>,
    path,
  );
}

describe("Models › Versions", () => {
  it("lists versions with the champion marked and shows its details with CV mean ± std", async () => {
    api("read");
    renderModels("/models");
    const table = await screen.findByTestId("versions-table");
    const championRow = within(table).getByText(V1).closest("tr")!;
    expect(within(championRow).getByText("champion")).toBeInTheDocument();
    expect(within(championRow).getByText("serving")).toBeInTheDocument();
    const metrics = await screen.findByTestId("metrics-table");
    expect(metrics).toHaveTextContent("ROC-AUC");
    expect(metrics).toHaveTextContent("0.775 ± 0.018");
  });

  it("hides Promote and Rollback from a read key", async () => {
    api("read");
    renderModels(`/models?version=${V2}`);
    await screen.findByTestId("metrics-table");
    expect(screen.queryByRole("button", { name: /promote/i })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /roll back/i })).not.toBeInTheDocument();
  });

  it("lets an admin promote after a confirm step and shows the API's refusal", async () => {
    const { calls } = api("admin", {
      [`POST /v1/models/${V2}/promote`]: {
        status: 409,
        body: { error: { code: "cannot_promote", message: `model ${V2} failed its checks: feature spec 0 != 1` } },
      },
    });
    const user = userEvent.setup();
    renderModels(`/models?version=${V2}`);
    await screen.findByTestId("metrics-table");
    expect(screen.getByRole("button", { name: /roll back stream champion/i })).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Promote" }));
    expect(calls.some((c) => c.method === "POST")).toBe(false); // nothing happens before the confirm
    await user.type(screen.getByPlaceholderText("optional"), "better on recent leads");
    await user.click(screen.getByRole("button", { name: "Confirm: promote" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("failed its checks: feature spec 0 != 1");
    const post = calls.find((c) => c.method === "POST")!;
    expect(JSON.parse(String(post.body))).toEqual({ reason: "better on recent leads", segment: null });
  });
});

const feature = (name: string, over: Record<string, unknown>) => ({
  feature: name,
  test: "ks",
  statistic: 0.05,
  p_value: 0.5,
  adjusted_p: 0.8,
  effect: 0.05,
  drifted: false,
  persistent: false,
  large: false,
  ...over,
});

const driftEvent = (index: number, level: string, type = "drift.window") => ({
  type,
  id: `dr_${index}`,
  model_version: V1,
  level,
  window_index: index,
  n_rows: 1000,
  window_start: "2026-11-20T00:00:00Z",
  window_end: "2026-11-23T00:00:00Z",
  at: "2026-11-27T17:00:00Z",
  performance: null,
  report: {
    window_index: index,
    n_rows: 1000,
    tested: type === "drift.window",
    level,
    reason: "",
    persistent_features: ["email_opens"],
    features: [
      feature("page_views", { statistic: 0.12, p_value: 0.001, adjusted_p: 0.004, effect: 0.12, drifted: true }),
      feature("email_opens", { statistic: 0.27, p_value: 1e-30, adjusted_p: 4e-29, effect: 0.27, drifted: true, persistent: true, large: true }),
      feature("calls", {}),
      feature("industry=retail", { test: "chi2", statistic: 9.1, p_value: 0.01, adjusted_p: 0.02, effect: 0.15, drifted: true, persistent: true }),
    ],
    score: null,
  },
});

describe("Models › Drift", () => {
  it("says what the agent needs when it has not tested a window", async () => {
    routeApi({
      "/v1/whoami": { body: whoami("read") },
      "/v1/models": { body: modelList },
      "/v1/drift": { body: { latest: {}, events: [] } },
      "/v1/drift/performance": { body: { performance: {} } },
    });
    renderModels("/models/drift");
    expect(await screen.findByText(/has not tested a window yet/)).toHaveTextContent("distinct leads");
  });

  it("shows the newest window's level and sorts the feature table", async () => {
    const latest = driftEvent(5, "medium");
    routeApi({
      "/v1/whoami": { body: whoami("read") },
      "/v1/models": { body: modelList },
      "/v1/drift": { body: { latest: { [V1]: latest }, events: [latest, driftEvent(4, "low"), driftEvent(3, "none"), driftEvent(0, "none", "drift.baseline")] } },
      "/v1/drift/performance": {
        body: { performance: { [V1]: { window: { n: 500, positives: 80, roc_auc: 0.74, brier: 0.1 }, baseline: { roc_auc: 0.81, brier: 0.09 }, level: "medium", labels_seen: 900, auc_drop_threshold: 0.05 } } },
      },
    });
    const user = userEvent.setup();
    renderModels("/models/drift");
    const card = await screen.findByTestId("drift-latest");
    expect(within(card).getAllByTestId("level-badge")[0]).toHaveTextContent("medium");

    const table = screen.getByTestId("drift-features");
    const names = () => within(table).getAllByRole("row").slice(1).map((r) => (r as HTMLTableRowElement).cells[0].textContent);
    // Worst first by default: persistent and large, persistent, drifted in this window, none.
    expect(names()).toEqual(["email_opens", "industry=retail", "page_views", "calls"]);
    expect(within(table).getByText("persistent, large")).toHaveClass("level-high");

    await user.click(within(table).getByRole("columnheader", { name: /^Effect/ }));
    expect(names()).toEqual(["email_opens", "industry=retail", "page_views", "calls"]);
    await user.click(within(table).getByRole("columnheader", { name: /^Effect/ }));
    expect(names()).toEqual(["calls", "page_views", "industry=retail", "email_opens"]);
    await user.click(within(table).getByRole("columnheader", { name: /^Feature/ }));
    expect(names()).toEqual(["calls", "email_opens", "industry=retail", "page_views"]);
    await user.click(within(table).getByRole("columnheader", { name: /^Statistic/ }));
    expect(names()[0]).toBe("industry=retail");

    // The level history: oldest first, the baseline window grey.
    const history = screen.getByTestId("level-history");
    const titles = within(history)
      .getAllByTitle(/^window/)
      .map((el) => el.getAttribute("title")!.split(":").pop()!.trim());
    expect(titles).toEqual(["baseline", "none", "low", "medium"]);

    const perf = screen.getByTestId("drift-performance");
    expect(perf).toHaveTextContent("900 labels seen");
    expect(perf).toHaveTextContent("−0.070");
  });
});

describe("Models › Retraining", () => {
  const decision = {
    id: "rt_1",
    trigger: "drift",
    detail: "drift event dr_5 (medium): email_opens",
    started_at: "2026-11-27T17:05:00Z",
    margin: 0.005,
    champion: V1,
    candidate: V2,
    outcome: "rejected",
    reason: "the candidate's ROC-AUC 0.781 does not beat the champion's 0.790 by the margin 0.005",
    holdout: { n: 800, positives: 120, from: "2026-11-20T00:00:00Z", to: "2026-11-27T00:00:00Z" },
    training: { n: 4000, positives: 600, from: "2026-10-01T00:00:00Z", to: "2026-11-19T00:00:00Z" },
    metrics: { candidate: { roc_auc: 0.781 }, champion: { roc_auc: 0.79 } },
    seconds: 42.5,
    train_seconds: 30.1,
  };

  it("lists decisions with the outcome, reason and both ROC-AUCs", async () => {
    routeApi({
      "/v1/whoami": { body: whoami("read") },
      "/v1/models/retraining": { body: { decisions: [decision, { id: "rt_0", trigger: "labels", outcome: "skipped", reason: "120 labelled outcomes; a retrain needs retrain_min_labels=200" }] } },
    });
    renderModels("/models/retraining");
    const items = await screen.findAllByTestId("decision");
    expect(items).toHaveLength(2);
    expect(items[0]).toHaveTextContent("rejected");
    expect(items[0]).toHaveTextContent("trigger drift");
    expect(items[0]).toHaveTextContent(decision.reason);
    const aucs = within(items[0]).getByTestId("auc-pair");
    expect(aucs).toHaveTextContent("candidate ROC-AUC 0.781");
    expect(aucs).toHaveTextContent("champion ROC-AUC 0.790");
    expect(aucs).toHaveTextContent("−0.009");
    expect(items[1]).toHaveTextContent("skipped");
    expect(within(items[1]).queryByTestId("auc-pair")).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Retrain now" })).not.toBeInTheDocument();
  });

  it("starts a retrain for an admin and follows its job to the decision", async () => {
    routeApi({
      "/v1/whoami": { body: whoami("admin") },
      "/v1/models/retraining": { body: { decisions: [] } },
      "POST /v1/models/retrain": { status: 202, body: { id: "job_r1", kind: "retrain", status: "queued", progress: 0, stage: "queued", message: "", created_at: "2026-11-27T17:10:00Z", finished_at: null, result: null } },
      "/v1/jobs/job_r1": { body: { id: "job_r1", kind: "retrain", status: "succeeded", progress: 1, stage: "done", message: "", created_at: "2026-11-27T17:10:00Z", finished_at: "2026-11-27T17:11:00Z", result: { ...decision, outcome: "promoted", reason: "beats the champion by 0.012" } } },
    });
    const user = userEvent.setup();
    renderModels("/models/retraining");
    expect(await screen.findByText(/No retrain yet/)).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Retrain now" }));
    const job = await screen.findByTestId("retrain-job");
    await vi.waitFor(() => expect(job).toHaveTextContent("promoted"));
    expect(job).toHaveTextContent("beats the champion by 0.012");
  });
});

describe("Models › A/B tests", () => {
  it("lists drafts, says statistics are not built, and hides the form from a read key", async () => {
    routeApi({
      "/v1/whoami": { body: whoami("read") },
      "/v1/models": { body: modelList },
      "/v1/experiments": { body: { experiments: [{ id: "hgb", name: "hgb", champion: V1, challenger: V2, traffic: 0.1, description: "", status: "draft", created_at: "2026-11-27T17:00:00Z", created_by: "demo" }] } },
    });
    renderModels("/models/ab");
    const table = await screen.findByTestId("experiments-table");
    expect(table).toHaveTextContent("draft");
    expect(table).toHaveTextContent("10 %");
    expect(screen.getByText(/assigning leads to the two arms/)).toHaveTextContent("come with the A/B issue");
    expect(screen.queryByRole("form", { name: "New experiment" })).not.toBeInTheDocument();
  });
});
