// Small pieces the Trends, Models and Batch pages share: a segmented control, badges, a
// two-step (confirm) admin action, a "what this counts" caption.
import { useState, type ReactNode } from "react";

import { ApiError } from "../../api/client";
import "./kit.css";

export function Segmented<T extends string>({
  label,
  value,
  options,
  onChange,
}: {
  label: string;
  value: T;
  options: { value: T; label: string; disabled?: boolean; title?: string }[];
  onChange: (value: T) => void;
}) {
  return (
    <div className="kit-seg" role="group" aria-label={label}>
      {options.map((option) => (
        <button
          key={option.value}
          type="button"
          className={option.value === value ? "kit-on" : undefined}
          aria-pressed={option.value === value}
          disabled={option.disabled}
          title={option.title}
          onClick={() => onChange(option.value)}
        >
          {option.label}
        </button>
      ))}
    </div>
  );
}

export type Level = "none" | "low" | "medium" | "high";

/** A drift or performance alert level. */
export function LevelBadge({ level }: { level: string | null | undefined }) {
  const known = level === "none" || level === "low" || level === "medium" || level === "high";
  return (
    <span className={`kit-badge level-${known ? level : "unknown"}`} data-testid="level-badge">
      {level ?? "—"}
    </span>
  );
}

export function Badge({ tone, children, title }: { tone: "good" | "bad" | "warn" | "info" | "muted"; children: ReactNode; title?: string }) {
  return (
    <span className={`kit-badge tone-${tone}`} title={title}>
      {children}
    </span>
  );
}

/** One line under a chart's title saying what it counts. */
export function Caption({ children }: { children: ReactNode }) {
  return <p className="kit-caption">{children}</p>;
}

/** The API's message of a failed call (an ApiError's own message, else the error's text). */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.status ? `${error.message} (HTTP ${error.status})` : error.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * An admin action in two steps: the button opens a confirm box (with an optional reason),
 * confirming runs `run`; its error (the API's message) stays shown until the next try.
 */
export function ConfirmAction({
  label,
  confirmText,
  run,
  withReason = false,
  danger = false,
  onDone,
}: {
  label: string;
  confirmText: ReactNode;
  run: (reason: string) => Promise<unknown>;
  withReason?: boolean;
  danger?: boolean;
  onDone?: (result: unknown) => void;
}) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function confirm() {
    setBusy(true);
    setError(null);
    try {
      const result = await run(reason.trim());
      setOpen(false);
      setReason("");
      onDone?.(result);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  if (!open) {
    return (
      <button type="button" className={danger ? "secondary kit-danger" : "secondary"} onClick={() => setOpen(true)}>
        {label}
      </button>
    );
  }
  return (
    <div className="kit-confirm" role="dialog" aria-label={label}>
      <div>{confirmText}</div>
      {withReason && (
        <label className="kit-confirm-reason">
          Reason (kept in the registry's history and the audit log)
          <input value={reason} onChange={(e) => setReason(e.target.value)} maxLength={500} placeholder="optional" />
        </label>
      )}
      {error !== null && (
        <p className="error" role="alert">
          {errorText(error)}
        </p>
      )}
      <div className="kit-confirm-buttons">
        <button type="button" className={danger ? "kit-danger" : undefined} onClick={confirm} disabled={busy}>
          {busy ? "Working…" : `Confirm: ${label.toLowerCase()}`}
        </button>
        <button type="button" className="secondary" onClick={() => { setOpen(false); setError(null); }} disabled={busy}>
          Cancel
        </button>
      </div>
    </div>
  );
}

/** Text with `backtick` spans shown as code (hints that name a command). */
export function CodeText({ text }: { text: string }) {
  return (
    <>
      {text.split("`").map((part, i) => (i % 2 ? <code key={i}>{part}</code> : <span key={i}>{part}</span>))}
    </>
  );
}
