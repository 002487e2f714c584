// Batch: score a CSV/TSV/Parquet file with the table model, follow the job, download the
// scored CSV; recent file-scoring jobs below.
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";

import { api } from "../api/client";
import { useModels, useWhoAmI } from "../api/hooks";
import type { Job, ModelList } from "../api/types";
import { BatchJob, DownloadButton } from "../components/batch/BatchJob";
import { BatchUpload } from "../components/batch/BatchUpload";
import { resultName, TABLE_MODEL_HINT } from "../components/batch/batchFiles";
import "../components/batch/batch.css";
import { Badge, Caption, CodeText } from "../components/kit/kit";
import { Empty, QueryState } from "../components/states";
import { fmtInt, fmtTime } from "../format";

/** The API keeps no input file name on a job: this browser remembers the ones it uploaded. */
const NAMES_KEY = "leadscore.batchFileNames";

function rememberedNames(): Record<string, string> {
  try {
    return JSON.parse(sessionStorage.getItem(NAMES_KEY) ?? "{}") as Record<string, string>;
  } catch {
    return {};
  }
}

function rememberName(jobId: string, name: string): void {
  const names = rememberedNames();
  names[jobId] = name;
  sessionStorage.setItem(NAMES_KEY, JSON.stringify(names));
}

export function Batch() {
  const me = useWhoAmI();
  const models = useModels();
  const table = useQuery({
    queryKey: ["models", "list", "table"],
    queryFn: ({ signal }) => api<ModelList>("/v1/models?segment=table", { signal }),
  });
  const [current, setCurrent] = useState<{ id: string; name: string | null } | null>(null);

  const canScore = me.data ? me.data.allows.score : true;
  const tableModels = (models.data?.models ?? []).filter((m) => m.kind === "table");
  const tableChampion = table.data?.champion ?? null;
  const noTableModel = table.data !== undefined && models.data !== undefined && tableModels.length === 0;

  return (
    <section className="batch">
      <h1>Batch scoring</h1>
      <div className="grid">
        <div className="card">
          <h2>Score a file</h2>
          <Caption>
            Upload a table of leads (a CRM export): every row is scored by the table model, and you get a CSV back with
            the score, grade, probability{" "}and the reasons, in the file&apos;s row order.
          </Caption>
          {me.data && !me.data.allows.score && (
            <div className="state error" role="alert">
              This key ({me.data.name}: {me.data.scopes.join(", ")}) may read but not score.{" "}
              <CodeText text="Batch files need a key with the `score` scope: `leadscore keys create --name batch --scope score`." />
            </div>
          )}
          {noTableModel && (
            <p className="kit-note batch-no-model">
              <strong>No table model yet.</strong> <CodeText text={TABLE_MODEL_HINT.replace(", then upload again", "")} />
            </p>
          )}
          <BatchUpload
            canScore={canScore}
            tableModels={tableModels}
            tableChampion={tableChampion}
            onStarted={(job, name) => {
              rememberName(job.id, name);
              setCurrent({ id: job.id, name });
            }}
          />
          {current && (
            <div className="batch-current">
              <BatchJob key={current.id} jobId={current.id} fileName={current.name} />
            </div>
          )}
        </div>
        <RecentJobs current={current?.id ?? null} onOpen={(id, name) => setCurrent({ id, name })} />
      </div>
    </section>
  );
}

function RecentJobs({ current, onOpen }: { current: string | null; onOpen: (id: string, name: string | null) => void }) {
  const jobs = useQuery({
    queryKey: ["jobs", "list"],
    queryFn: ({ signal }) => api<{ jobs: Job[] }>("/v1/jobs?limit=100", { signal }),
    refetchInterval: (q) => (q.state.data?.jobs.some((j) => j.status === "queued" || j.status === "running") ? 2000 : 15_000),
  });
  const names = rememberedNames();
  return (
    <div className="card">
      <h2>Recent file-scoring jobs</h2>
      <Caption>Jobs of every key, newest first; a result stays downloadable while the API host keeps it.</Caption>
      <QueryState query={jobs} what="Loading jobs">
        {({ jobs: all }) => {
          const list = all.filter((j) => j.kind === "score_file");
          if (!list.length) return <Empty>No file has been scored yet.</Empty>;
          return (
            <table className="data" data-testid="batch-jobs">
              <thead>
                <tr>
                  <th>Job</th>
                  <th>Status</th>
                  <th>Started</th>
                  <th>By</th>
                  <th className="num">Rows</th>
                  <th>Result</th>
                </tr>
              </thead>
              <tbody>
                {list.map((job) => {
                  const name = names[job.id] ?? null;
                  const rows = (job.result?.rows as number | undefined) ?? null;
                  return (
                    <tr key={job.id} className={job.id === current ? "selected" : undefined}>
                      <td>
                        <button type="button" className="link mono" onClick={() => onOpen(job.id, name)} title="show this job above">
                          {name ?? job.id}
                        </button>
                        {name && <div className="muted mono kit-small">{job.id}</div>}
                      </td>
                      <td>
                        <Badge tone={job.status === "succeeded" ? "good" : job.status === "failed" ? "bad" : "info"}>
                          {job.status}
                          {job.status === "running" ? ` ${Math.round(job.progress * 100)} %` : ""}
                        </Badge>
                      </td>
                      <td>{fmtTime(job.created_at)}</td>
                      <td>{(job as Job & { created_by?: string }).created_by ?? "—"}</td>
                      <td className="num">{fmtInt(rows)}</td>
                      <td className="batch-job-result">
                        {job.status === "succeeded" ? (
                          <DownloadButton
                            jobId={job.id}
                            filename={name ? resultName(name) : `${job.id}.scored.csv`}
                            testId="batch-job-download"
                          />
                        ) : job.status === "failed" ? (
                          <span className="kit-bad" title={job.message}>
                            {job.message.length > 90 ? `${job.message.slice(0, 88)}…` : job.message}
                          </span>
                        ) : (
                          <span className="muted">{job.stage}</span>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          );
        }}
      </QueryState>
    </div>
  );
}
