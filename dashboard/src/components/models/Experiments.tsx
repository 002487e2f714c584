// The A/B tests tab: experiment records (GET /v1/experiments) and, for admins, a form that
// records a draft (POST /v1/experiments). Arms and statistics are not built yet.
import { useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";

import { api } from "../../api/client";
import { useExperiments, useModels, useWhoAmI } from "../../api/hooks";
import type { Experiment } from "../../api/types";
import { fmtTime } from "../../format";
import { Badge, errorText } from "../kit/kit";
import { Empty, QueryState } from "../states";

export function ExperimentsTab() {
  const experiments = useExperiments();
  const me = useWhoAmI();
  const admin = me.data?.allows.admin === true;
  return (
    <div className="grid">
      <p className="kit-note" style={{ margin: 0 }}>
        The API records A/B tests as <strong>drafts</strong> only: assigning leads to the two arms and comparing their
        conversion come with the A/B issue. A draft is what that will read.
      </p>
      <div className="card">
        <h2>Experiments</h2>
        <QueryState query={experiments} what="Loading experiments">
          {(answer) => {
            const list = (Array.isArray(answer) ? answer : (answer.experiments ?? [])) as Experiment[];
            if (!list.length) {
              return <Empty>No experiment recorded yet.{admin ? " Create a draft below." : ""}</Empty>;
            }
            return (
              <table className="data" data-testid="experiments-table">
                <thead>
                  <tr>
                    <th>Name</th>
                    <th>Status</th>
                    <th>Champion</th>
                    <th>Challenger</th>
                    <th className="num">Traffic to challenger</th>
                    <th>Created</th>
                    <th>Description</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((e) => (
                    <tr key={e.id}>
                      <td>
                        <strong>{e.name}</strong>
                      </td>
                      <td>
                        <Badge tone={e.status === "running" ? "info" : "muted"}>{e.status}</Badge>
                      </td>
                      <td className="mono">{e.champion ?? "—"}</td>
                      <td className="mono">{e.challenger}</td>
                      <td className="num">{Math.round(e.traffic * 1000) / 10} %</td>
                      <td>
                        {fmtTime(e.created_at)}
                        <div className="muted kit-small">by {e.created_by}</div>
                      </td>
                      <td>{e.description || <span className="muted">—</span>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            );
          }}
        </QueryState>
      </div>
      {admin && <CreateExperiment />}
    </div>
  );
}

function CreateExperiment() {
  const models = useModels();
  const client = useQueryClient();
  const [name, setName] = useState("");
  const [challenger, setChallenger] = useState("");
  const [trafficPct, setTrafficPct] = useState("10");
  const [description, setDescription] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const champion = models.data?.champion ?? null;
  const candidates = (models.data?.models ?? []).filter((m) => m.version !== champion && m.kind !== "table").reverse();
  const traffic = Number(trafficPct) / 100;
  const nameOk = /^[A-Za-z0-9_.-]{1,100}$/.test(name);
  const valid = nameOk && !!challenger && traffic > 0 && traffic < 1;

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!valid) return;
    setBusy(true);
    setError(null);
    setCreated(null);
    try {
      const experiment = await api<Experiment>("/v1/experiments", {
        method: "POST",
        body: { name, challenger, traffic, description },
      });
      setCreated(experiment.name);
      setName("");
      setDescription("");
      client.invalidateQueries({ queryKey: ["experiments"] });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="card experiment-form" onSubmit={submit} aria-label="New experiment">
      <h2>New experiment (draft)</h2>
      <p className="kit-caption">
        A challenger model against the current champion (<span className="mono">{champion ?? "none"}</span>).
      </p>
      <div className="form-row">
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="hgb-vs-ensemble" required />
          {name && !nameOk && <span className="kit-bad kit-small">letters, digits, '.', '_' and '-' only</span>}
        </label>
        <label>
          Challenger
          <select value={challenger} onChange={(e) => setChallenger(e.target.value)} required>
            <option value="">{candidates.length ? "choose a version…" : "no other stream model"}</option>
            {candidates.map((m) => (
              <option key={m.version} value={m.version}>
                {m.version} ({m.variant ?? m.kind}, ROC-AUC {m.roc_auc?.toFixed(3) ?? "—"})
              </option>
            ))}
          </select>
        </label>
        <label className="narrow">
          Traffic to challenger (%)
          <input type="number" min={1} max={99} step={1} value={trafficPct} onChange={(e) => setTrafficPct(e.target.value)} />
        </label>
      </div>
      <label>
        Description
        <input value={description} onChange={(e) => setDescription(e.target.value)} maxLength={2000} placeholder="what it tests, and why" />
      </label>
      {error !== null && (
        <p className="error" role="alert">
          {errorText(error)}
        </p>
      )}
      {created && <p className="up">Draft “{created}” recorded.</p>}
      <div>
        <button type="submit" disabled={!valid || busy}>
          {busy ? "Saving…" : "Record draft"}
        </button>
      </div>
    </form>
  );
}
