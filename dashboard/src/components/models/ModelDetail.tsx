// One model version: its manifest and training report (GET /v1/models/{version}), the
// cross-validated metrics, the variants compared, the top feature importances; Promote for admins.
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";

import { api } from "../../api/client";
import { useModel } from "../../api/hooks";
import type { ModelRow } from "../../api/types";
import { fmtInt, fmtNum, fmtPct, fmtTime } from "../../format";
import { Badge, Caption, ConfirmAction } from "../kit/kit";
import { QueryState } from "../states";

type Metrics = Record<string, number | null | undefined> & { std?: Record<string, number> };

interface ReportModel {
  name: string;
  description?: string;
  deployable?: boolean;
  cv?: Metrics;
}

interface ModelAnswer {
  manifest: Record<string, any>;
  report: Record<string, any> | null;
}

/** Metrics shown, in order, with how to read them. */
const METRICS: [string, string, string][] = [
  ["roc_auc", "ROC-AUC", "how well it ranks converters above the rest (0.5 = chance)"],
  ["pr_auc", "PR-AUC", "precision over recall; compare with the base rate"],
  ["brier", "Brier score", "mean squared error of the probability (lower is better)"],
  ["log_loss", "Log loss", "lower is better"],
  ["accuracy", "Accuracy", "at a 0.5 threshold; read it against the majority share"],
  ["majority_accuracy", "Majority share", "the accuracy of always answering 'no'"],
  ["precision", "Precision", "at 0.5"],
  ["recall", "Recall", "at 0.5"],
  ["f1", "F1", "at 0.5"],
  ["base_rate", "Base rate", "share of positives in the data"],
];

const TOP_FEATURES = 15;

/** The registry segment a model of this kind is promoted in ('table' models score files). */
export function segmentOf(kind: string | null | undefined): "table" | null {
  return kind === "table" ? "table" : null;
}

export function ModelDetail({
  version,
  row,
  isChampion,
  admin,
  onChanged,
}: {
  version: string;
  row: ModelRow | null;
  isChampion: boolean;
  admin: boolean;
  onChanged: () => void;
}) {
  const model = useModel(version);
  return (
    <div className="card model-detail" data-testid="model-detail">
      <QueryState query={model} what={`Loading ${version}`}>
        {(answer) => (
          <Detail
            answer={answer as ModelAnswer}
            version={version}
            row={row}
            isChampion={isChampion}
            admin={admin}
            onChanged={onChanged}
          />
        )}
      </QueryState>
    </div>
  );
}

function Detail({
  answer,
  version,
  row,
  isChampion,
  admin,
  onChanged,
}: {
  answer: ModelAnswer;
  version: string;
  row: ModelRow | null;
  isChampion: boolean;
  admin: boolean;
  onChanged: () => void;
}) {
  const { manifest, report } = answer;
  const metrics = (manifest.metrics ?? {}) as Record<string, any>;
  const cv: Metrics | undefined = metrics.cv ?? report?.models?.find((m: ReportModel) => m.name === manifest.variant)?.cv;
  const holdout: Metrics | undefined = metrics.holdout ?? undefined;
  const championHoldout: Metrics | undefined = metrics.champion_holdout ?? undefined;
  const importances: { feature: string; importance: number }[] = (report?.feature_importance ?? [])
    .slice()
    .sort((a: { importance: number }, b: { importance: number }) => b.importance - a.importance)
    .slice(0, TOP_FEATURES);
  const balance = manifest.class_balance ?? {};
  const window = manifest.training_window ?? {};
  const cvScheme = metrics.cv_scheme ?? report?.data?.cv;
  const segment = segmentOf(manifest.kind);
  const compared: ReportModel[] = report?.models ?? [];
  const warnings: unknown[] = report?.warnings ?? [];

  return (
    <>
      <div className="kit-head">
        <div>
          <h2 className="mono">{version}</h2>
          <p className="kit-caption">
            {manifest.kind === "table" ? "table model (scores uploaded files)" : "lead-events model (scores the stream)"} ·{" "}
            {manifest.variant ?? "—"} · created {fmtTime(manifest.created_at)}
            {row?.problem && (
              <>
                {" "}
                · <span className="kit-bad">cannot be loaded: {row.problem}</span>
              </>
            )}
          </p>
        </div>
        {admin && !isChampion && (
          <ConfirmAction
            label="Promote"
            withReason
            confirmText={
              <>
                Make <code>{version}</code> the {segment === "table" ? "table champion (it scores uploaded files)" : "champion"}?
                {segment === null && " Every worker and API process swaps to it within seconds."}
              </>
            }
            run={(reason) =>
              api(`/v1/models/${encodeURIComponent(version)}/promote`, {
                method: "POST",
                body: { reason: reason || null, segment },
              })
            }
            onDone={onChanged}
          />
        )}
        {isChampion && <Badge tone="good">the {segment === "table" ? "table " : ""}champion</Badge>}
      </div>

      <dl className="model-facts">
        <div>
          <dt>Trained on</dt>
          <dd>{manifest.source ?? report?.data?.source ?? "—"}</dd>
        </div>
        <div>
          <dt>Rows</dt>
          <dd>
            {fmtInt(manifest.n_rows)}
            {balance.positive !== undefined && (
              <span className="muted">
                {" "}
                ({fmtInt(balance.positive)} positive, {fmtPct(balance.positive_rate ?? balance.positive / (manifest.n_rows || 1), 1)})
              </span>
            )}
          </dd>
        </div>
        <div>
          <dt>Training window</dt>
          <dd>{window.start ? `${fmtTime(window.start)} → ${fmtTime(window.end)}` : "—"}</dd>
        </div>
        <div>
          <dt>Validation</dt>
          <dd>{cvScheme ? `${cvScheme.folds ?? "?"} folds, ${String(cvScheme.scheme ?? "").replace(/_/g, " ")}` : "—"}</dd>
        </div>
        <div>
          <dt>Features</dt>
          <dd>
            {fmtInt(manifest.feature_names?.length ?? report?.data?.features)}
            {report?.final?.features_dropped?.length ? (
              <span className="muted"> ({report.final.features_dropped.length} dropped as uninformative)</span>
            ) : null}
          </dd>
        </div>
        {metrics.training_set && (
          <div>
            <dt>Training set</dt>
            <dd>{metrics.training_set}</dd>
          </div>
        )}
      </dl>

      {report?.chosen?.reason && (
        <p className="kit-note">
          <strong>Why {report.chosen.name}:</strong> {report.chosen.reason}
        </p>
      )}
      {warnings.length > 0 && (
        <ul className="warnings">
          {warnings.map((w, i) => (
            <li key={i}>{typeof w === "string" ? w : JSON.stringify(w)}</li>
          ))}
        </ul>
      )}

      <div className="grid cols-2 detail-grid">
        <div>
          <h3>Metrics</h3>
          {cv ? (
            <MetricsTable cv={cv} holdout={holdout} championHoldout={championHoldout} />
          ) : (
            <p className="muted">This version has no cross-validated metrics (no training report).</p>
          )}
          {compared.length > 1 && (
            <>
              <h3 className="kit-spaced">Variants compared on the same folds</h3>
              <table className="data">
                <thead>
                  <tr>
                    <th>Variant</th>
                    <th className="num">ROC-AUC</th>
                    <th className="num">Brier</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {compared.map((m) => (
                    <tr key={m.name} title={m.description}>
                      <td>{m.name}</td>
                      <td className="num">
                        {fmtNum(m.cv?.roc_auc, 3)}
                        <span className="muted"> ± {fmtNum(m.cv?.std?.roc_auc, 3)}</span>
                      </td>
                      <td className="num">{fmtNum(m.cv?.brier, 4)}</td>
                      <td>
                        {m.name === report?.chosen?.name ? (
                          <Badge tone="good">chosen</Badge>
                        ) : m.deployable === false ? (
                          <Badge tone="muted">not deployable</Badge>
                        ) : null}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </div>
        <div>
          <h3>Feature importance (top {TOP_FEATURES})</h3>
          <Caption>Mean absolute SHAP value (log-odds) per input on a sample of the training rows: how much the model leans on it.</Caption>
          {importances.length ? (
            <ImportanceChart rows={importances} />
          ) : (
            <p className="muted">The training report has no feature importances.</p>
          )}
        </div>
      </div>
    </>
  );
}

function MetricsTable({ cv, holdout, championHoldout }: { cv: Metrics; holdout?: Metrics; championHoldout?: Metrics }) {
  const rows = METRICS.filter(([key]) => cv[key] !== undefined && cv[key] !== null);
  return (
    <table className="data metrics" data-testid="metrics-table">
      <thead>
        <tr>
          <th>Metric</th>
          <th className="num">Cross-validated (mean ± std)</th>
          {holdout && <th className="num">Recent holdout</th>}
          {championHoldout && <th className="num">Champion, same holdout</th>}
        </tr>
      </thead>
      <tbody>
        {rows.map(([key, label, hint]) => (
          <tr key={key} title={hint}>
            <td>{label}</td>
            <td className="num">
              {fmtNum(cv[key] as number, 3)}
              {cv.std?.[key] !== undefined && <span className="muted"> ± {fmtNum(cv.std[key], 3)}</span>}
            </td>
            {holdout && <td className="num">{fmtNum(holdout[key] as number, 3)}</td>}
            {championHoldout && <td className="num">{fmtNum(championHoldout[key] as number, 3)}</td>}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function ImportanceChart({ rows }: { rows: { feature: string; importance: number }[] }) {
  return (
    <ResponsiveContainer width="100%" height={Math.max(160, rows.length * 22 + 30)}>
      <BarChart data={rows} layout="vertical" margin={{ top: 0, right: 16, bottom: 0, left: 0 }}>
        <CartesianGrid stroke="#eef2f7" horizontal={false} />
        <XAxis type="number" tick={{ fontSize: 11, fill: "#64748b" }} />
        <YAxis type="category" dataKey="feature" width={190} tick={{ fontSize: 11, fill: "#0f172a" }} interval={0} />
        <Tooltip formatter={(value) => [fmtNum(Number(value), 4), "importance"]} />
        <Bar dataKey="importance" fill="#2563eb" isAnimationActive={false} />
      </BarChart>
    </ResponsiveContainer>
  );
}
