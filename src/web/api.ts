/** Same-origin JSON requests; the session travels in the HttpOnly cookie. */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

interface Problem {
  code?: string;
  title?: string;
  detail?: string;
}

let sessionEnded: () => void = () => {};

/** Called when a request is refused because the session is gone (401 outside a password check). */
export function onSessionEnded(handler: () => void): void {
  sessionEnded = handler;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** A 401 here means a wrong password, not an ended session. */
  checksPassword?: boolean;
}

export async function api<T>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const init: RequestInit = { method, credentials: 'same-origin', headers, signal: options.signal };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const problem = (data ?? {}) as Problem;
    if (res.status === 401 && !options.checksPassword) sessionEnded();
    throw new ApiError(res.status, problem.code, problem.detail || problem.title || `HTTP ${res.status}`);
  }
  return data as T;
}

export const channelPath = (name: string): string => `/api/channels/${encodeURIComponent(name.replace(/^#/, ''))}`;
export const userPath = (nick: string): string => `/api/users/${encodeURIComponent(nick)}`;
export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
