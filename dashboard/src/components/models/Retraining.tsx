// The Retraining tab: retrain decisions, newest first (GET /v1/models/retraining; the record
// is written by leadscore/jobs/retrain.py), and for admins "Retrain now" (a job, polled).
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";

import { api } from "../../api/client";
import { useJob, useRetraining, useWhoAmI } from "../../api/hooks";
import type { Job } from "../../api/types";
import { fmtAgo, fmtInt, fmtNum, fmtTime, shortVersion } from "../../format";
import { Badge, Caption, errorText } from "../kit/kit";
import { Empty, QueryState } from "../states";

interface Span {
  n: number;
  positives: number;
  from: string | null;
  to: string | null;
}

type Metrics = Record<string, number | null> | null;

/** A retrain decision record (leadscore/jobs/retrain.py `retrain_job`). */
export interface Decision {
  id?: string;
  outcome?: string;
  trigger?: string;
  detail?: string;
  started_at?: string;
  finished_at?: string;
  margin?: number;
  champion?: string | null;
  candidate?: string;
  reason?: string;
  training_set?: string;
  examples?: { n: number; positives: number };
  training?: Span;
  holdout?: Span;
  metrics?: { candidate: Metrics; champion: Metrics };
  champion_error?: string;
  announce_warning?: string;
  seconds?: number;
  train_seconds?: number;
}

export function outcomeOf(d: Decision): string {
  return d.outcome ?? "unknown";
}

const OUTCOME_TONE: Record<string, "good" | "bad" | "warn" | "muted" | "info"> = {
  promoted: "good",
  rejected: "warn",
  skipped: "muted",
  failed: "bad",
};

export function RetrainingTab() {
  const retraining = useRetraining(20);
  const me = useWhoAmI();
  const admin = me.data?.allows.admin === true;
  return (
    <div className="grid">
      {admin && <RetrainNow />}
      <div className="card">
        <h2>Retrain decisions</h2>
        <Caption>
          Each retrain trains a candidate on recent labelled outcomes and promotes it only if it beats the champion on
          the same recent holdout by the margin. Newest first.
        </Caption>
        <QueryState query={retraining} what="Loading decisions">
          {(answer) => {
            const decisions = (Array.isArray(answer) ? answer : (answer.decisions ?? [])) as Decision[];
            if (!decisions.length) {
              return (
                <Empty>
                  No retrain yet. The worker retrains after a medium drift alert, after enough new labels, or on its
                  schedule; {admin ? "or press Retrain now." : "an admin can also start one."}
                </Empty>
              );
            }
            return (
              <ol className="decisions" data-testid="decisions">
                {decisions.map((d, i) => (
                  <DecisionItem key={d.id ?? i} d={d} />
                ))}
              </ol>
            );
          }}
        </QueryState>
      </div>
    </div>
  );
}

function auc(m: Metrics | undefined): number | null {
  return m?.roc_auc ?? null;
}

export function DecisionItem({ d }: { d: Decision }) {
  const outcome = outcomeOf(d);
  const candidateAuc = auc(d.metrics?.candidate);
  const championAuc = auc(d.metrics?.champion);
  const gain = candidateAuc !== null && championAuc !== null ? candidateAuc - championAuc : null;
  return (
    <li className="decision" data-testid="decision">
      <div className="decision-head">
        <Badge tone={OUTCOME_TONE[outcome] ?? "muted"}>{outcome}</Badge>
        <span>
          trigger <strong>{d.trigger ?? "—"}</strong>
        </span>
        <span className="muted" title={fmtTime(d.started_at)}>
          {fmtTime(d.started_at)} ({fmtAgo(d.started_at)})
        </span>
        {d.seconds !== undefined && (
          <span className="muted">
            took {fmtNum(d.seconds, 0)} s{d.train_seconds !== undefined ? ` (training ${fmtNum(d.train_seconds, 0)} s)` : ""}
          </span>
        )}
      </div>
      {d.reason && <p className="decision-reason">{d.reason}</p>}
      {(candidateAuc !== null || championAuc !== null) && (
        <div className="auc-pair" data-testid="auc-pair">
          <span>
            candidate ROC-AUC <strong>{fmtNum(candidateAuc, 3)}</strong>
          </span>
          <span>
            champion ROC-AUC <strong>{fmtNum(championAuc, 3)}</strong>
          </span>
          {gain !== null && (
            <span className={gain > 0 ? "up" : "down"}>
              {gain >= 0 ? "+" : "−"}
              {Math.abs(gain).toFixed(3)}
              {d.margin !== undefined && <span className="muted"> (needs +{d.margin})</span>}
            </span>
          )}
          <span className="muted">on the same holdout</span>
        </div>
      )}
      <dl className="decision-facts">
        {d.detail && (
          <div>
            <dt>Why</dt>
            <dd>{d.detail}</dd>
          </div>
        )}
        {d.holdout && (
          <div>
            <dt>Holdout</dt>
            <dd>
              {fmtInt(d.holdout.n)} rows, {fmtInt(d.holdout.positives)} converted · {fmtTime(d.holdout.from)} →{" "}
              {fmtTime(d.holdout.to)}
            </dd>
          </div>
        )}
        {d.training && (
          <div>
            <dt>Training</dt>
            <dd>
              {fmtInt(d.training.n)} rows, {fmtInt(d.training.positives)} converted · {fmtTime(d.training.from)} →{" "}
              {fmtTime(d.training.to)}
            </dd>
          </div>
        )}
        {d.examples && (
          <div>
            <dt>Outcomes read</dt>
            <dd>
              {fmtInt(d.examples.n)} ({fmtInt(d.examples.positives)} converted)
            </dd>
          </div>
        )}
        {(d.candidate || d.champion) && (
          <div>
            <dt>Models</dt>
            <dd className="mono" title={`candidate ${d.candidate ?? "—"}, champion ${d.champion ?? "—"}`}>
              {d.candidate ? `candidate ${shortVersion(d.candidate)}` : "no candidate"} · champion{" "}
              {shortVersion(d.champion ?? null)}
            </dd>
          </div>
        )}
        {d.champion_error && (
          <div>
            <dt>Champion</dt>
            <dd className="kit-bad">could not score the holdout ({d.champion_error}); the candidate was judged alone</dd>
          </div>
        )}
        {d.announce_warning && (
          <div>
            <dt>Warning</dt>
            <dd className="kit-bad">{d.announce_warning}</dd>
          </div>
        )}
      </dl>
    </li>
  );
}

function RetrainNow() {
  const client = useQueryClient();
  const [jobId, setJobId] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const job = useJob(jobId);
  const status = job.data?.status;
  const running = busy || (!!jobId && status !== "succeeded" && status !== "failed");

  useEffect(() => {
    if (status === "succeeded" || status === "failed") {
      client.invalidateQueries({ queryKey: ["retraining"] });
      client.invalidateQueries({ queryKey: ["models"] });
    }
  }, [status, client]);

  async function start() {
    setBusy(true);
    setError(null);
    try {
      const started = await api<Job>("/v1/models/retrain", { method: "POST" });
      setJobId(started.id);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const result = job.data?.result as Decision | null | undefined;
  return (
    <div className="card retrain-now">
      <div className="kit-head">
        <div>
          <h2>Retrain now</h2>
          <Caption>
            The same run as <code>leadscore retrain</code>: train on the recent outcomes, compare with the champion on
            the same holdout, promote only if better. One retrain runs at a time.
          </Caption>
        </div>
        <button type="button" onClick={start} disabled={running}>
          {running ? "Retraining…" : "Retrain now"}
        </button>
      </div>
      {error !== null && (
        <p className="error" role="alert">
          Could not start a retrain: {errorText(error)}
        </p>
      )}
      {jobId && job.data && (
        <div className="job-line" data-testid="retrain-job">
          <span className="mono">{jobId}</span> · {job.data.status}
          {job.data.stage && job.data.stage !== job.data.status ? ` (${job.data.stage})` : ""}
          {status === "failed" && <span className="kit-bad"> — {job.data.message || "the job failed"}</span>}
          {status === "succeeded" && result && (
            <>
              {" "}
              — <Badge tone={OUTCOME_TONE[outcomeOf(result)] ?? "muted"}>{outcomeOf(result)}</Badge> {result.reason}
            </>
          )}
        </div>
      )}
      {jobId && job.error !== null && job.error !== undefined && <p className="error">{errorText(job.error)}</p>}
    </div>
  );
}
