// The Versions tab: every model version (GET /v1/models), the champion of the stream and of
// the table segment marked, what this API process serves; a version's details below.
// Admins can promote a version and roll back a segment's champion.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useSearchParams } from "react-router-dom";

import { api } from "../../api/client";
import { useModels, useWhoAmI } from "../../api/hooks";
import type { ModelList, ModelRow } from "../../api/types";
import { fmtInt, fmtNum, fmtTime } from "../../format";
import { Badge, ConfirmAction } from "../kit/kit";
import { Empty, QueryState } from "../states";
import { ModelDetail } from "./ModelDetail";

export function VersionsTab() {
  const models = useModels();
  const table = useQuery({
    queryKey: ["models", "list", "table"],
    queryFn: ({ signal }) => api<ModelList>("/v1/models?segment=table", { signal }),
  });
  const me = useWhoAmI();
  const admin = me.data?.allows.admin === true;
  const client = useQueryClient();
  const [params, setParams] = useSearchParams();
  const tableChampion = table.data?.champion ?? null;

  const refresh = () => client.invalidateQueries({ queryKey: ["models"] });
  const rollback = (segment: "table" | null) => (reason: string) =>
    api("/v1/models/rollback", { method: "POST", body: { reason: reason || null, segment } });

  return (
    <QueryState query={models} what="Loading models">
      {(list) => {
        const selected = params.get("version") ?? list.champion ?? list.models.at(-1)?.version ?? null;
        const newestFirst = [...list.models].reverse();
        return (
          <div className="grid">
            <div className="card">
              <div className="kit-head">
                <div>
                  <h2>Versions</h2>
                  <p className="kit-caption">
                    Every model in the registry, newest first. The stream champion scores the live events; the table
                    champion scores uploaded files (Batch). Click a version for its details.
                  </p>
                  {list.serving !== list.champion && (
                    <p className="kit-note" data-testid="serving-note">
                      This API process serves <span className="mono">{list.serving ?? "nothing"}</span>
                      {list.champion ? (
                        <>
                          , not the champion <span className="mono">{list.champion}</span>: it swaps on the next model
                          event or registry poll (LEADSCORE_MODEL_POLL_S).
                        </>
                      ) : (
                        ": no champion yet, so the rules prior scores the stream."
                      )}
                    </p>
                  )}
                </div>
                {admin && (
                  <div className="admin-actions">
                    <ConfirmAction
                      label="Roll back stream champion"
                      danger
                      withReason
                      confirmText={
                        <>
                          Restore the <strong>previous</strong> stream champion in place of{" "}
                          <code>{list.champion ?? "none"}</code>? Every worker and API process swaps to it.
                        </>
                      }
                      run={rollback(null)}
                      onDone={refresh}
                    />
                    {tableChampion && (
                      <ConfirmAction
                        label="Roll back table champion"
                        danger
                        withReason
                        confirmText={
                          <>
                            Restore the previous table champion in place of <code>{tableChampion}</code>? Batch files
                            are scored by it from then on.
                          </>
                        }
                        run={rollback("table")}
                        onDone={refresh}
                      />
                    )}
                  </div>
                )}
              </div>
              {list.models.length === 0 ? (
                <Empty>
                  No model in the registry yet: the stream is scored by the rules prior. Train one with{" "}
                  <code>leadscore train</code> (or <code>leadscore train --data leads.csv --target converted</code> for
                  batch files).
                </Empty>
              ) : (
                <VersionTable
                  rows={newestFirst}
                  list={list}
                  tableChampion={tableChampion}
                  selected={selected}
                  onSelect={(version) => setParams({ version })}
                />
              )}
            </div>
            {selected && (
              <ModelDetail
                version={selected}
                row={list.models.find((m) => m.version === selected) ?? null}
                isChampion={selected === list.champion || selected === tableChampion}
                admin={admin}
                onChanged={refresh}
              />
            )}
          </div>
        );
      }}
    </QueryState>
  );
}

function VersionTable({
  rows,
  list,
  tableChampion,
  selected,
  onSelect,
}: {
  rows: ModelRow[];
  list: ModelList;
  tableChampion: string | null;
  selected: string | null;
  onSelect: (version: string) => void;
}) {
  return (
    <table className="data versions" data-testid="versions-table">
      <thead>
        <tr>
          <th>Version</th>
          <th>Status</th>
          <th>Created</th>
          <th>Kind</th>
          <th>Variant</th>
          <th className="num">Training rows</th>
          <th className="num" title="cross-validated">ROC-AUC</th>
          <th className="num" title="cross-validated, at a 0.5 threshold">Accuracy</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr
            key={row.version}
            className={`clickable${row.version === selected ? " selected" : ""}`}
            onClick={() => onSelect(row.version)}
            aria-selected={row.version === selected}
          >
            <td className="mono">
              <button type="button" className="link mono" onClick={() => onSelect(row.version)}>
                {row.version}
              </button>
            </td>
            <td className="status-cell">
              {row.version === list.champion && <Badge tone="good">champion</Badge>}
              {row.version === tableChampion && (
                <Badge tone="good" title="scores uploaded files">
                  table champion
                </Badge>
              )}
              {row.version === list.serving && (
                <Badge tone="info" title="the model this API process scores with">
                  serving
                </Badge>
              )}
              {row.problem && (
                <Badge tone="bad" title={row.problem}>
                  unusable
                </Badge>
              )}
            </td>
            <td>{fmtTime(row.created_at)}</td>
            <td>{row.kind === "lead_events" ? "lead events" : (row.kind ?? "—")}</td>
            <td>{row.variant ?? "—"}</td>
            <td className="num">{fmtInt(row.n_rows)}</td>
            <td className="num">{fmtNum(row.roc_auc, 3)}</td>
            <td className="num">{fmtNum(row.accuracy, 3)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
