import { configure, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { setApiKey } from "../api/client";
import { renderPage, routeApi, whoami } from "../test/pagesApi";
import { Batch } from "./Batch";

// Pages with charts render slowly in jsdom on a busy machine: give each test room.
vi.setConfig({ testTimeout: 20_000 });
configure({ asyncUtilTimeout: 5_000 });

const TABLE = "20261127T164516Z-f5a335";
const models = {
  champion: "20261127T164136Z-432b18",
  serving: "20261127T164136Z-432b18",
  models: [
    { version: TABLE, created_at: "2026-11-27T16:45:16Z", kind: "table", variant: "ensemble_hgb", n_rows: 12330, roc_auc: 0.779, accuracy: 0.847, champion: false, problem: null },
  ],
};

const job = (over: Record<string, unknown>) => ({
  id: "job_b1",
  kind: "score_file",
  status: "queued",
  progress: 0,
  stage: "queued",
  message: "",
  created_at: "2026-11-27T17:00:00Z",
  finished_at: null,
  result: null,
  ...over,
});

const scored = ["lead_id,score,grade,probability,reason_1", ...Array.from({ length: 25 }, (_, i) => `shop-${i + 1},${90 - i},${i < 3 ? "A" : "D"},0.${90 - i},"+3.1: ExitRates 0.2, low"`)].join("\n") + "\n";

function routes(over: Parameters<typeof routeApi>[0] = {}) {
  return routeApi({
    "/v1/whoami": { body: whoami("score") },
    "/v1/models": (call) => ({ body: call.url.searchParams.get("segment") === "table" ? { ...models, champion: TABLE } : models }),
    "/v1/jobs": { body: { jobs: [] } },
    ...over,
  });
}

const csv = () => new File(["lead_id,Administrative,Revenue\nshop-1,0,FALSE\n"], "leads.csv", { type: "text/csv" });

describe("Batch", () => {
  beforeEach(() => setApiKey("lsk_test_key"));
  afterEach(() => setApiKey(null));

  it("uploads a file, shows the job's progress, then downloads the result with the key and previews 20 rows", async () => {
    const createObjectURL = vi.fn(() => "blob:scored");
    vi.stubGlobal("URL", Object.assign(URL, { createObjectURL, revokeObjectURL: vi.fn() }));
    const clicks = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(() => {});
    const { calls } = routes({
      "POST /v1/score/batch/file": { status: 202, body: job({}) },
      "/v1/jobs/job_b1": (_call, n) => ({
        body: n === 0 ? job({ status: "running", stage: "scoring", progress: 0.4 }) : job({ status: "succeeded", stage: "done", progress: 1, result: { rows: 25, output: "scored.csv", log: "" } }),
      }),
      "/v1/jobs/job_b1/result": { text: scored },
    });
    const user = userEvent.setup();
    renderPage(<Batch />);

    await user.upload(screen.getByTestId("batch-file"), csv());
    // The id column is read from the header, and an id-like one is chosen.
    await vi.waitFor(() => expect(screen.getByRole("combobox", { name: /Id column/ })).toHaveValue("lead_id"));
    await user.click(screen.getByRole("checkbox", { name: /With reasons/ }));
    await user.click(screen.getByRole("button", { name: "Score the file" }));

    const progress = await screen.findByTestId("batch-progress");
    await vi.waitFor(() => expect(progress).toHaveAttribute("aria-valuenow", "40"));

    const upload = calls.find((c) => c.method === "POST")!;
    const form = upload.body as FormData;
    expect((form.get("file") as File).name).toBe("leads.csv");
    expect(form.get("id_column")).toBe("lead_id");
    expect(form.get("reasons")).toBe("0");
    expect(form.get("model")).toBeNull();
    expect(upload.headers["X-API-Key"]).toBe("lsk_test_key");

    const download = await screen.findByTestId("batch-download", {}, { timeout: 4000 });
    expect(progress).toHaveAttribute("aria-valuenow", "100");
    expect(download).toHaveTextContent("leads.scored.csv");
    const preview = await screen.findByTestId("batch-preview");
    expect(within(preview).getAllByRole("row")).toHaveLength(21); // header + 20
    expect(preview).toHaveTextContent("+3.1: ExitRates 0.2, low");

    await user.click(download);
    const resultCalls = calls.filter((c) => c.path === "/v1/jobs/job_b1/result");
    expect(resultCalls.length).toBeGreaterThanOrEqual(1);
    expect(resultCalls.every((c) => c.headers["X-API-Key"] === "lsk_test_key")).toBe(true);
    expect(createObjectURL).toHaveBeenCalled();
    const link = clicks.mock.contexts[0] as HTMLAnchorElement;
    expect(link.download).toBe("leads.scored.csv");
    expect(link.href).toBe("blob:scored");
  }, 20_000); // the job is polled every second, as in the browser

  it("shows the API's message and what to do when the job finds no table model", async () => {
    routes({
      "POST /v1/score/batch/file": { status: 202, body: job({}) },
      "/v1/jobs/job_b1": {
        body: job({ status: "failed", stage: "failed", message: "model 20261127T164136Z-432b18 scores lead events, not table rows; pass --model with a version trained by `leadscore train --data`" }),
      },
    });
    const user = userEvent.setup();
    renderPage(<Batch />);
    await user.upload(screen.getByTestId("batch-file"), csv());
    await user.click(screen.getByRole("button", { name: "Score the file" }));
    const error = await screen.findByTestId("batch-error");
    expect(error).toHaveTextContent("scores lead events, not table rows");
    expect(error).toHaveTextContent("leadscore train --data leads.csv --target converted");
    expect(screen.queryByTestId("batch-download")).not.toBeInTheDocument();
  });

  it("shows a 413 with what to do", async () => {
    routes({
      "POST /v1/score/batch/file": {
        status: 413,
        body: { error: { code: "file_too_large", message: "the file is over 104,857,600 bytes (LEADSCORE_API_MAX_UPLOAD_BYTES)" } },
      },
    });
    const user = userEvent.setup();
    renderPage(<Batch />);
    await user.upload(screen.getByTestId("batch-file"), csv());
    await user.click(screen.getByRole("button", { name: "Score the file" }));
    const error = await screen.findByTestId("batch-error");
    expect(error).toHaveTextContent("the file is over 104,857,600 bytes");
    expect(error).toHaveTextContent("Split the file");
    expect(screen.queryByTestId("batch-progress")).not.toBeInTheDocument();
  });

  it("tells a read key it cannot score, and keeps the upload off", async () => {
    routes({ "/v1/whoami": { body: whoami("read") } });
    renderPage(<Batch />);
    expect(await screen.findByText(/may read but not score/)).toBeInTheDocument();
    expect(screen.getByTestId("batch-file")).toBeDisabled();
    expect(screen.getByRole("button", { name: "Score the file" })).toBeDisabled();
  });

  it("lists recent file-scoring jobs only", async () => {
    routes({
      "/v1/jobs": {
        body: {
          jobs: [
            job({ id: "job_a", status: "succeeded", progress: 1, stage: "done", result: { rows: 300 } }),
            job({ id: "job_t", kind: "train", status: "succeeded" }),
            job({ id: "job_f", status: "failed", stage: "failed", message: "no table model in /models" }),
          ],
        },
      },
    });
    renderPage(<Batch />);
    const table = await screen.findByTestId("batch-jobs");
    expect(within(table).getAllByRole("row")).toHaveLength(3);
    expect(table).toHaveTextContent("300");
    expect(table).toHaveTextContent("no table model");
    expect(within(table).getByTestId("batch-job-download")).toHaveTextContent("job_a.scored.csv");
  });
});
