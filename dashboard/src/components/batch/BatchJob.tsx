// A file-scoring job: its progress (GET /v1/jobs/{id}), then the download of the scored CSV
// (GET /v1/jobs/{id}/result, with the key) and a preview of its first rows.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";

import { apiFetch } from "../../api/client";
import { useJob } from "../../api/hooks";
import { fmtInt, fmtTime } from "../../format";
import { Badge, CodeText, errorText } from "../kit/kit";
import { batchErrorHelp, parseDelimited, resultName } from "./batchFiles";

const PREVIEW_ROWS = 20;

const STAGE_TEXT: Record<string, string> = {
  queued: "waiting for a free job slot",
  starting: "loading the model and reading the file",
  scoring: "scoring rows",
  done: "done",
  failed: "failed",
};

/** Saves a blob as a file through a temporary object URL. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function fetchResult(jobId: string): Promise<Blob> {
  const response = await apiFetch(`/v1/jobs/${encodeURIComponent(jobId)}/result`);
  return response.blob();
}

export function DownloadButton({
  jobId,
  filename,
  cached,
  testId = "batch-download",
}: {
  jobId: string;
  filename: string;
  cached?: Blob;
  testId?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  async function download() {
    setBusy(true);
    setError(null);
    try {
      saveBlob(cached ?? (await fetchResult(jobId)), filename);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <span className="batch-download">
      <button type="button" onClick={download} disabled={busy} data-testid={testId}>
        {busy ? "Downloading…" : `Download ${filename}`}
      </button>
      {error !== null && (
        <span className="error" role="alert">
          {errorText(error)}
        </span>
      )}
    </span>
  );
}

export function BatchJob({ jobId, fileName }: { jobId: string; fileName: string | null }) {
  const job = useJob(jobId);
  const data = job.data;
  const succeeded = data?.status === "succeeded";
  const client = useQueryClient();
  const finished = succeeded || data?.status === "failed";
  useEffect(() => {
    // The recent-jobs list shows this job too: refresh it once it ends.
    if (finished) void client.invalidateQueries({ queryKey: ["jobs", "list"] });
  }, [finished, client]);
  const result = useQuery({
    queryKey: ["jobs", jobId, "result"],
    queryFn: () => fetchResult(jobId),
    enabled: succeeded,
    staleTime: Infinity,
    retry: false,
  });
  const preview = useQuery({
    queryKey: ["jobs", jobId, "preview"],
    queryFn: async () => parseDelimited(await result.data!.slice(0, 262_144).text(), PREVIEW_ROWS + 1),
    enabled: !!result.data,
    staleTime: Infinity,
  });

  if (job.error && !data) {
    return (
      <div className="state error" role="alert">
        Cannot follow job <span className="mono">{jobId}</span>: {errorText(job.error)}
      </div>
    );
  }
  if (!data) return <p className="muted">Starting job {jobId}…</p>;

  const pct = Math.round((data.status === "succeeded" ? 1 : data.progress) * 100);
  const rows = (data.result?.rows as number | undefined) ?? null;
  const log = String(data.result?.log ?? "");
  const warnings = log.split("\n").filter((line) => /warning/i.test(line));
  const failure = data.status === "failed" ? batchErrorHelp(new Error(data.message || "the job failed")) : null;
  const filename = resultName(fileName);

  return (
    <div className="batch-job" data-testid="batch-job">
      <div className="batch-job-head">
        {fileName ? (
          <>
            <strong>{fileName}</strong>
            <span className="mono muted">{jobId}</span>
          </>
        ) : (
          <strong className="mono">{jobId}</strong>
        )}
        <Badge tone={data.status === "succeeded" ? "good" : data.status === "failed" ? "bad" : "info"}>{data.status}</Badge>
        <span className="muted">started {fmtTime(data.created_at)}</span>
      </div>
      <div
        className={`batch-progress ${data.status}`}
        role="progressbar"
        aria-label="Scoring progress"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        data-testid="batch-progress"
      >
        <div className="batch-progress-bar" style={{ width: `${data.status === "failed" ? 100 : pct}%` }} />
      </div>
      <p className="muted batch-stage">
        {pct} % · {STAGE_TEXT[data.stage] ?? data.stage}
        {rows !== null && ` · ${fmtInt(rows)} rows scored`}
        {data.finished_at && ` · finished ${fmtTime(data.finished_at)}`}
      </p>

      {failure && (
        <div className="state error" role="alert" data-testid="batch-error">
          <strong>The file could not be scored:</strong> <CodeText text={failure.message} />
          {failure.hint && <p className="batch-hint"><CodeText text={failure.hint} /></p>}
        </div>
      )}

      {succeeded && (
        <>
          {warnings.length > 0 && (
            <ul className="batch-warnings">
              {warnings.map((w, i) => (
                <li key={i}>{w.replace(/^warning:\s*/i, "")}</li>
              ))}
            </ul>
          )}
          <DownloadButton jobId={jobId} filename={filename} cached={result.data} />
          {result.error !== null && result.error !== undefined && (
            <p className="error" role="alert">
              Cannot read the result: {errorText(result.error)}
            </p>
          )}
          {preview.data && preview.data.length > 1 && <Preview records={preview.data} total={rows} />}
        </>
      )}
    </div>
  );
}

function Preview({ records, total }: { records: string[][]; total: number | null }) {
  const [header, ...rows] = records;
  const numeric = new Set(["score", "probability"]);
  return (
    <div className="batch-preview">
      <h3>
        First {rows.length} rows{total !== null ? ` of ${fmtInt(total)}` : ""}
      </h3>
      <div className="batch-preview-scroll">
        <table className="data" data-testid="batch-preview">
          <thead>
            <tr>
              {header.map((name) => (
                <th key={name} className={numeric.has(name) ? "num" : undefined}>
                  {name}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row, i) => (
              <tr key={i}>
                {header.map((name, j) => (
                  <td key={name} className={numeric.has(name) ? "num" : undefined}>
                    {name === "grade" && /^[ABCD]$/.test(row[j] ?? "") ? <span className={`grade ${row[j]}`}>{row[j]}</span> : row[j]}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
