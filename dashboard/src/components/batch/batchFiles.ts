// File helpers of the Batch page: a small CSV reader for previews and headers, the result's
// file name, and what to tell the person when the upload or the job fails.
import { ApiError } from "../../api/client";

/** What the API takes (leadscore/api/jobs.py `_UPLOAD_SUFFIXES`). */
export const UPLOAD_SUFFIXES = [".csv.gz", ".tsv.gz", ".csv", ".tsv", ".txt", ".parquet"];

export const TABLE_MODEL_HINT =
  "Batch files are scored by a model trained on a table: `leadscore train --data leads.csv --target converted` " +
  "(it becomes the table champion), then upload again.";

export function isSupported(name: string): boolean {
  const lower = name.toLowerCase();
  return UPLOAD_SUFFIXES.some((suffix) => lower.endsWith(suffix));
}

/** `leads.csv` → `leads.scored.csv`; `q3.tsv.gz` → `q3.scored.csv`. */
export function resultName(inputName: string | null | undefined): string {
  if (!inputName) return "scored.csv";
  const base = inputName.split(/[\\/]/).pop() ?? inputName;
  const lower = base.toLowerCase();
  const suffix = UPLOAD_SUFFIXES.find((s) => lower.endsWith(s));
  const stem = suffix ? base.slice(0, base.length - suffix.length) : base;
  return `${stem || "scored"}.scored.csv`;
}

/**
 * Records of a CSV/TSV text (RFC 4180 quotes, CRLF or LF), at most `maxRecords`.
 * A record cut off at the end of the text (a partial read) is dropped.
 */
export function parseDelimited(text: string, maxRecords: number, delimiter = ","): string[][] {
  const records: string[][] = [];
  let field = "";
  let record: string[] = [];
  let quoted = false;
  let i = 0;
  while (i < text.length && records.length < maxRecords) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        field += c;
      }
      i += 1;
      continue;
    }
    if (c === '"' && field === "") {
      quoted = true;
    } else if (c === delimiter) {
      record.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      record.push(field);
      records.push(record);
      record = [];
      field = "";
      if (c === "\r" && text[i + 1] === "\n") i += 1;
    } else {
      field += c;
    }
    i += 1;
  }
  return records;
}

/** The header of a CSV/TSV file (reads only its first 64 KB); null for Parquet and gzip. */
export async function readHeader(file: File): Promise<string[] | null> {
  const lower = file.name.toLowerCase();
  if (lower.endsWith(".gz") || lower.endsWith(".parquet")) return null;
  const head = await file.slice(0, 65_536).text();
  const firstLine = head.split(/\r?\n/, 1)[0] ?? "";
  const delimiter = lower.endsWith(".tsv") || (firstLine.includes("\t") && !firstLine.includes(",")) ? "\t" : ",";
  const [header] = parseDelimited(`${firstLine}\n`, 1, delimiter);
  return header?.filter((name) => name !== "") ?? null;
}

/** What to say about a failed upload or job: the API's message and what to do about it. */
export function batchErrorHelp(error: unknown): { message: string; hint: string | null } {
  const e = error as ApiError;
  const message = e?.message ?? String(error);
  let hint: string | null = null;
  if (/table model|not table rows|train --data|no champion/i.test(message)) hint = TABLE_MODEL_HINT;
  else if (e?.status === 413) hint = "Split the file into smaller ones, or ask the operator to raise LEADSCORE_API_MAX_UPLOAD_BYTES.";
  else if (e?.status === 403)
    hint = "This key may read but not score. Batch files need a key with the `score` scope: `leadscore keys create --name batch --scope score`.";
  else if (e?.status === 422 && e.code === "unsupported_file") hint = "Upload a .csv, .tsv (optionally .gz) or .parquet file.";
  else if (e?.status === 409) hint = TABLE_MODEL_HINT;
  else if (e?.status === 0) hint = "Is `leadscore api` running?";
  return { message, hint };
}
