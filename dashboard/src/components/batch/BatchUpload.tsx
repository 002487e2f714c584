// The upload form: drop or pick a CSV/TSV/Parquet file, choose the id column, reasons and
// model, and start a file-scoring job (POST /v1/score/batch/file, multipart).
import { useState, type DragEvent, type FormEvent } from "react";

import { apiFetch } from "../../api/client";
import type { Job, ModelRow } from "../../api/types";
import { CodeText } from "../kit/kit";
import { batchErrorHelp, isSupported, readHeader, UPLOAD_SUFFIXES } from "./batchFiles";

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 ** 2).toFixed(1)} MB`;
}

export function BatchUpload({
  canScore,
  tableModels,
  tableChampion,
  onStarted,
}: {
  canScore: boolean;
  tableModels: ModelRow[];
  tableChampion: string | null;
  onStarted: (job: Job, fileName: string) => void;
}) {
  const [file, setFile] = useState<File | null>(null);
  const [columns, setColumns] = useState<string[] | null>(null);
  const [idColumn, setIdColumn] = useState("");
  const [reasons, setReasons] = useState(true);
  const [model, setModel] = useState("");
  const [dragging, setDragging] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function choose(picked: File | null | undefined) {
    setError(null);
    setColumns(null);
    setIdColumn("");
    if (!picked) {
      setFile(null);
      return;
    }
    setFile(picked);
    if (!isSupported(picked.name)) return;
    try {
      const header = await readHeader(picked);
      setColumns(header);
      // A column that looks like an id is a good default; the person can change it.
      const guess = header?.find((name) => /^(lead_?id|id|email|customer_?id|contact_?id)$/i.test(name));
      if (guess) setIdColumn(guess);
    } catch {
      setColumns(null);
    }
  }

  function onDrop(event: DragEvent) {
    event.preventDefault();
    setDragging(false);
    if (canScore) void choose(event.dataTransfer.files?.[0]);
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!file) return;
    setBusy(true);
    setError(null);
    const form = new FormData();
    form.append("file", file, file.name);
    if (idColumn.trim()) form.append("id_column", idColumn.trim());
    form.append("reasons", reasons ? "3" : "0");
    if (model) form.append("model", model);
    try {
      const response = await apiFetch("/v1/score/batch/file", { method: "POST", body: form });
      const job = (await response.json()) as Job;
      onStarted(job, file.name);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const unsupported = file !== null && !isSupported(file.name);
  const help = error !== null ? batchErrorHelp(error) : null;

  return (
    <form className="batch-form" onSubmit={submit} aria-label="Score a file">
      <label
        className={`batch-drop${dragging ? " dragging" : ""}${canScore ? "" : " disabled"}`}
        onDragOver={(e) => {
          e.preventDefault();
          if (canScore) setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <input
          type="file"
          accept={UPLOAD_SUFFIXES.join(",")}
          data-testid="batch-file"
          disabled={!canScore}
          onChange={(e) => void choose(e.target.files?.[0])}
        />
        {file ? (
          <span>
            <strong>{file.name}</strong> <span className="muted">({fmtBytes(file.size)})</span>
            <span className="muted"> — drop another file or click to change</span>
          </span>
        ) : (
          <span>
            <strong>Drop a CSV, TSV or Parquet file here</strong>
            <span className="muted"> or click to choose one. One lead per row; gzipped CSV/TSV are fine.</span>
          </span>
        )}
      </label>
      {unsupported && (
        <p className="error" role="alert">
          {file!.name} is not a file the API can read: upload a {UPLOAD_SUFFIXES.join(", ")} file.
        </p>
      )}

      <div className="batch-options">
        <label>
          Id column (optional: copied into the result)
          {columns && columns.length > 0 ? (
            <select value={idColumn} onChange={(e) => setIdColumn(e.target.value)} disabled={!canScore}>
              <option value="">none (rows keep the file&apos;s order)</option>
              {columns.map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
          ) : (
            <input value={idColumn} onChange={(e) => setIdColumn(e.target.value)} placeholder="e.g. lead_id" disabled={!canScore} />
          )}
        </label>
        <label>
          Model
          <select value={model} onChange={(e) => setModel(e.target.value)} disabled={!canScore}>
            <option value="">table champion{tableChampion ? ` (${tableChampion})` : " (none yet)"}</option>
            {tableModels
              .filter((m) => m.version !== tableChampion)
              .map((m) => (
                <option key={m.version} value={m.version}>
                  {m.version} ({m.variant}, ROC-AUC {m.roc_auc?.toFixed(3) ?? "—"})
                </option>
              ))}
          </select>
        </label>
        <label className="batch-check">
          <input type="checkbox" checked={reasons} onChange={(e) => setReasons(e.target.checked)} disabled={!canScore} /> With
          reasons (the top 3 per row, in words and points)
        </label>
      </div>

      {help && (
        <div className="state error" role="alert" data-testid="batch-error">
          <strong>The upload was refused:</strong> <CodeText text={help.message} />
          {help.hint && <p className="batch-hint"><CodeText text={help.hint} /></p>}
        </div>
      )}

      <div>
        <button type="submit" disabled={!canScore || !file || unsupported || busy}>
          {busy ? "Uploading…" : "Score the file"}
        </button>
      </div>
    </form>
  );
}
