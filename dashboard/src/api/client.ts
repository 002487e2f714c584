// The one way the dashboard talks to `leadscore api`: same origin, the key from this
// browser's storage (never from the build), JSON errors turned into ApiError.

const KEY_NAME = "leadscore.apiKey";

/** An error answered by the API (or the network), with the API's own code and message. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

type Listener = () => void;
let signedOutBecause: string | null = null;

/** Why the last key was dropped by the app (a 401), for the sign-in form to say. */
export function signOutReason(): string | null {
  return signedOutBecause;
}
const listeners = new Set<Listener>();

/** The API key this browser signed in with, or null. Session storage unless remembered. */
export function getApiKey(): string | null {
  return sessionStorage.getItem(KEY_NAME) ?? localStorage.getItem(KEY_NAME);
}

export function setApiKey(key: string | null, remember = false, reason: string | null = null): void {
  signedOutBecause = key ? null : reason;
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
  if (key) (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
  listeners.forEach((listener) => listener());
}

/** Called whenever the key changes (sign-in, sign-out, a 401). */
export function onApiKeyChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

async function toError(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body?.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  signal?: AbortSignal;
  /** Send this instead of the stored key (sign-in checks a key before keeping it). */
  key?: string;
}

/** The raw response of an API call; throws ApiError unless it is 2xx. */
export async function apiFetch(path: string, options: RequestOptions = {}): Promise<Response> {
  const key = options.key ?? getApiKey();
  const headers: Record<string, string> = {};
  if (key) headers["X-API-Key"] = key;
  let body: BodyInit | undefined;
  if (options.body instanceof FormData) {
    body = options.body;
  } else if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(path, { method: options.method ?? "GET", headers, body, signal: options.signal });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw new ApiError(0, "network", `cannot reach the API (${(error as Error).message})`);
  }
  if (!response.ok) {
    const error = await toError(response);
    if (response.status === 401 && options.key === undefined && key) {
      setApiKey(null, false, `The API refused the key you signed in with: ${error.message}`);
    }
    throw error;
  }
  return response;
}

/** GET (or another method) returning the JSON body. */
export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await apiFetch(path, options);
  return (await response.json()) as T;
}

/** A query string from the defined values. */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
