// The Drift tab: what the worker's drift agent found (GET /v1/drift): per model version its
// newest window's alert level and every feature's test, the levels of recent windows, and
// the live performance on labelled outcomes (GET /v1/drift/performance).
import { useState } from "react";

import { useDrift, useDriftPerformance, useModels } from "../../api/hooks";
import type { DriftEvent } from "../../api/types";
import { fmtInt, fmtNum, fmtTime } from "../../format";
import { Caption, LevelBadge } from "../kit/kit";
import { Empty, QueryState } from "../states";
import {
  FIRST_DIR,
  LEVELS,
  SEVERITY_LEVEL,
  SEVERITY_TEXT,
  fmtP,
  severity,
  sortFeatures,
  type DriftReport,
  type FeatureDrift,
  type SortDir,
  type SortKey,
} from "./driftMath";

export const DRIFT_EMPTY =
  "The drift agent has not tested a window yet: it needs LEADSCORE_DRIFT_WINDOW_SIZE distinct leads per window " +
  "(1,000 by default), and a new champion's first LEADSCORE_DRIFT_BASELINE_WINDOWS windows (3) form its reference " +
  "before any is tested.";

export function DriftTab() {
  const drift = useDrift(50);
  const models = useModels();
  const [chosen, setChosen] = useState<string | null>(null);

  return (
    <div className="grid">
      <QueryState query={drift} what="Loading drift reports">
        {(state) => {
          const versions = Object.keys(state.latest ?? {});
          if (!versions.length) {
            return (
              <>
                <Empty>{DRIFT_EMPTY}</Empty>
                <PerformanceCard />
              </>
            );
          }
          const champion = models.data?.champion;
          const version =
            chosen && versions.includes(chosen)
              ? chosen
              : champion && versions.includes(champion)
                ? champion
                : versions[0];
          const latest = state.latest[version];
          const history = (state.events ?? []).filter((e) => e.model_version === version).reverse();
          return (
            <>
              {versions.length > 1 && (
                <div className="toolbar">
                  <label>
                    Model version{" "}
                    <select value={version} onChange={(e) => setChosen(e.target.value)}>
                      {versions.map((v) => (
                        <option key={v} value={v}>
                          {v}
                          {v === champion ? " (champion)" : ""} — {state.latest[v].level}
                        </option>
                      ))}
                    </select>
                  </label>
                </div>
              )}
              <LatestWindow event={latest} history={history.length ? history : [latest]} />
              <PerformanceCard />
              <FeaturesCard event={latest} />
            </>
          );
        }}
      </QueryState>
    </div>
  );
}

function LatestWindow({ event, history }: { event: DriftEvent; history: DriftEvent[] }) {
  const report = (event.report ?? {}) as Partial<DriftReport>;
  const features = report.features ?? [];
  const baseline = event.type === "drift.baseline" || report.tested === false;
  const drifted = features.filter((f) => f.drifted).length;
  const persistent = features.filter((f) => f.persistent).length;
  return (
    <div className="card" data-testid="drift-latest">
      <div className="kit-head">
        <div>
          <h2>
            Newest window of <span className="mono">{event.model_version}</span>
          </h2>
          <p className="kit-caption">
            Window {event.window_index} · {fmtInt(event.n_rows)} leads · {fmtTime(event.window_start)} →{" "}
            {fmtTime(event.window_end)} (event time) · tested {fmtTime(event.at)}
          </p>
        </div>
        <div className="level-summary">
          Alert <LevelBadge level={event.level} />
          {report.level && report.level !== event.level && (
            <span className="muted kit-small"> (features: {report.level}; raised by the performance alert)</span>
          )}
        </div>
      </div>
      {baseline ? (
        <p className="kit-note">
          This window is part of the model&apos;s reference{report.reason ? ` (${report.reason})` : ""}: a new
          model&apos;s first windows of live traffic are what later windows are tested against, so nothing is tested
          yet.
        </p>
      ) : (
        <div className="drift-summary">
          <p>
            <strong>{fmtInt(drifted)}</strong> of {fmtInt(features.length)} features drifted in this window,{" "}
            <strong>{fmtInt(persistent)}</strong> persistently
            {report.persistent_features && report.persistent_features.length > 0 && (
              <>: {report.persistent_features.join(", ")}</>
            )}
            .
          </p>
          {report.score && (
            <p>
              Score distribution: KS D {fmtNum(report.score.effect, 3)}, p {fmtP(report.score.p_value)} —{" "}
              {SEVERITY_TEXT[severity(report.score)]}.
            </p>
          )}
          {report.reason && <p className="muted">{report.reason}</p>}
        </div>
      )}
      <h3 className="kit-spaced">Alert level of recent windows</h3>
      <Caption>
        One bar per window of distinct leads (of the newest 50 reports), oldest on the left; its height and colour are
        the window&apos;s alert level; the model&apos;s baseline windows are grey.
      </Caption>
      <LevelHistory events={history} />
    </div>
  );
}

function FeaturesCard({ event }: { event: DriftEvent }) {
  const report = (event.report ?? {}) as Partial<DriftReport>;
  const features = report.features ?? [];
  if (event.type === "drift.baseline" || report.tested === false) return null;
  return (
    <div className="card">
      <h2>Every feature&apos;s test in window {event.window_index}</h2>
      <Caption>
        Each feature of this window against the model&apos;s reference; click a column to sort. A feature drifts when
        its adjusted p is under the false-discovery rate and its effect reaches the floor.
      </Caption>
      {features.length ? (
        <div className="drift-table-scroll">
          <FeatureTable features={features} />
        </div>
      ) : (
        <p className="muted">The report lists no feature tests.</p>
      )}
    </div>
  );
}

const COLUMNS: [SortKey, string, string][] = [
  ["feature", "Feature", ""],
  ["test", "Test", "ks: two-sample Kolmogorov–Smirnov; chi2: χ² with PSI as the effect"],
  ["statistic", "Statistic", "KS D or χ²"],
  ["p_value", "p-value", ""],
  ["adjusted_p", "Adjusted p", "Benjamini–Hochberg over the features"],
  ["effect", "Effect", "KS D or PSI; counts from 0.1, large from 0.2 (D) / 0.25 (PSI)"],
  ["status", "Status", "drifted in this window; persistent: in 2 of the last 3 windows"],
];

export function FeatureTable({ features }: { features: FeatureDrift[] }) {
  const [sort, setSort] = useState<{ key: SortKey; dir: SortDir }>({ key: "status", dir: "desc" });
  const rows = sortFeatures(features, sort.key, sort.dir);
  const onSort = (key: SortKey) =>
    setSort((s) =>
      s.key === key ? { key, dir: s.dir === "asc" ? "desc" : "asc" } : { key, dir: FIRST_DIR[key] },
    );
  return (
    <table className="data drift-features" data-testid="drift-features">
      <thead>
        <tr>
          {COLUMNS.map(([key, label, hint]) => (
            <th
              key={key}
              className={`sortable${key === "feature" || key === "test" || key === "status" ? "" : " num"}`}
              title={hint || undefined}
              aria-sort={sort.key === key ? (sort.dir === "asc" ? "ascending" : "descending") : "none"}
              onClick={() => onSort(key)}
            >
              {label}
              {sort.key === key ? (sort.dir === "asc" ? " ▲" : " ▼") : ""}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((f) => {
          const s = severity(f);
          return (
            <tr key={f.feature} className={s >= 2 ? "drifting" : undefined}>
              <td className="mono">{f.feature}</td>
              <td>{f.test}</td>
              <td className="num">{fmtNum(f.statistic, 3)}</td>
              <td className="num">{fmtP(f.p_value)}</td>
              <td className="num">{fmtP(f.adjusted_p)}</td>
              <td className={f.large ? "num kit-strong" : "num"}>{fmtNum(f.effect, 3)}</td>
              <td>
                <span className={`kit-badge level-${SEVERITY_LEVEL[s]}`}>{SEVERITY_TEXT[s]}</span>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** A strip of squares, one per window, coloured by its level. */
export function LevelHistory({ events }: { events: DriftEvent[] }) {
  return (
    <div className="level-history" data-testid="level-history">
      <div className="level-cells">
        {events.map((e) => {
          const baseline = e.type === "drift.baseline";
          const rank = LEVELS.indexOf(e.level as (typeof LEVELS)[number]);
          return (
            <div
              key={e.id}
              className="level-col"
              title={`window ${e.window_index} (${fmtInt(e.n_rows)} leads, to ${fmtTime(e.window_end)}): ${
                baseline ? "baseline" : e.level
              }`}
            >
              <div className={`level-cell ${baseline ? "baseline" : `level-${e.level}`}`} style={{ height: `${25 + 25 * Math.max(rank, 0)}%` }} />
              <span className="level-index">{e.window_index}</span>
            </div>
          );
        })}
      </div>
      <div className="level-legend">
        {LEVELS.map((level) => (
          <span key={level}>
            <i className={`level-cell level-${level}`} /> {level}
          </span>
        ))}
        <span>
          <i className="level-cell baseline" /> baseline
        </span>
      </div>
    </div>
  );
}

/** Metric, label, and whether higher is better (null: neither, e.g. the share that converted). */
const PERF_METRICS: [string, string, boolean | null][] = [
  ["roc_auc", "ROC-AUC", true],
  ["brier", "Brier", false],
  ["accuracy", "Accuracy", true],
  ["precision", "Precision", true],
  ["recall", "Recall", true],
  ["f1", "F1", true],
  ["positive_rate", "Converted share", null],
];

function PerformanceCard() {
  const perf = useDriftPerformance();
  return (
    <div className="card" data-testid="drift-performance">
      <h2>Live performance on labelled outcomes</h2>
      <Caption>
        Each model version&apos;s metrics over its sliding window of the latest outcomes (the probability it gave each
        lead just before the outcome), against its baseline: the window&apos;s metrics the first time it filled.
      </Caption>
      <QueryState query={perf} what="Loading performance">
        {({ performance }) => {
          const versions = Object.keys(performance ?? {});
          if (!versions.length) {
            return (
              <Empty>
                No labelled outcomes yet: the window fills as leads convert or are disqualified (lead.converted,
                lead.disqualified events).
              </Empty>
            );
          }
          return (
            <div className="perf-list">
              {versions.map((version) => (
                <PerformanceOf key={version} version={version} summary={performance[version]} />
              ))}
            </div>
          );
        }}
      </QueryState>
    </div>
  );
}

function PerformanceOf({ version, summary }: { version: string; summary: Record<string, any> }) {
  const window = summary.window ?? {};
  const baseline = summary.baseline as Record<string, number> | null;
  const drop = summary.auc_drop_threshold as number | undefined;
  return (
    <div className="perf-model">
      <p>
        <span className="mono">{version}</span> · alert <LevelBadge level={summary.level} /> ·{" "}
        {fmtInt(summary.labels_seen)} labels seen, {fmtInt(window.n)} in the window ({fmtInt(window.positives)} converted)
      </p>
      <table className="data perf-table">
        <thead>
          <tr>
            <th>Metric</th>
            <th className="num">Window</th>
            <th className="num">Baseline</th>
            <th className="num">Change</th>
          </tr>
        </thead>
        <tbody>
          {PERF_METRICS.map(([key, label, higherBetter]) => {
            const now = window[key] as number | null | undefined;
            const then = baseline?.[key];
            const delta = now !== null && now !== undefined && then !== undefined && then !== null ? now - then : null;
            const worse = delta !== null && higherBetter !== null && (higherBetter ? delta < 0 : delta > 0);
            const neutral = delta === null || higherBetter === null || Math.abs(delta) < 0.0005;
            return (
              <tr key={key}>
                <td>{label}</td>
                <td className="num">{fmtNum(now, 3)}</td>
                <td className="num">{fmtNum(then, 3)}</td>
                <td className={`num ${neutral ? "" : worse ? "down" : "up"}`}>
                  {delta === null ? "—" : `${delta > 0 ? "+" : delta < 0 ? "−" : ""}${Math.abs(delta).toFixed(3)}`}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p className="muted kit-small">
        {baseline
          ? drop !== undefined
            ? `A ROC-AUC ${drop} below the baseline is a medium alert, ${fmtNum(2 * drop, 2)} below a high one.`
            : ""
          : "No baseline yet: it is set the first time the window is full (with enough of both classes for a ROC-AUC)."}
        {window.roc_auc === null && " ROC-AUC needs at least 10 outcomes of each class in the window."}
      </p>
    </div>
  );
}
