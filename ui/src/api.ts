// The session (token in sessionStorage) and the one way the dashboard calls the API.
export type Role = "viewer" | "user" | "admin";
const ROLES: Role[] = ["viewer", "user", "admin"];

export interface Session {
  token: string;
  account: string;
  role: Role;
  /** Who signed in: a service account's username, or the token's subject. */
  who: string;
  /** An operator token (`accounts: "*"`). */
  operator: boolean;
  /** Epoch ms when the token expires, when known. */
  expiresAt: number | null;
}

const KEY = "runner.session";
let current: Session | null = load();
let notice: string | null = null;
const listeners = new Set<() => void>();

function load(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Session | null;
    return s && typeof s.token === "string" && typeof s.account === "string" ? s : null;
  } catch {
    return null;
  }
}

export const session = () => current;
/** A message for the sign-in page (why the session ended), read once. */
export function takeNotice(): string | null {
  const n = notice;
  notice = null;
  return n;
}
export function onSessionChange(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
function changed() {
  for (const fn of listeners) fn();
}

export function signIn(s: Session) {
  current = s;
  sessionStorage.setItem(KEY, JSON.stringify(s));
  changed();
}

export function signOut(why?: string) {
  current = null;
  notice = why ?? null;
  sessionStorage.removeItem(KEY);
  changed();
}

/** Whether the signed-in role includes `need`. */
export function can(need: Role): boolean {
  return !!current && ROLES.indexOf(current.role) >= ROLES.indexOf(need);
}

export interface FieldError {
  field: string;
  message: string;
}
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  errors?: FieldError[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
  }
  /** The messages for a field and everything under it (`hosts.1` matches `hosts.1.id`). */
  fieldMessages(field: string): string[] {
    return (this.problem.errors ?? [])
      .filter((e) => e.field === field || e.field.startsWith(field + "."))
      .map((e) => (e.field === field ? e.message : `${e.field.slice(field.length + 1)}: ${e.message}`));
  }
}

/** The payload of a JWT, unverified (only to show who and what role; the API verifies it). */
export function jwtClaims(token: string): Record<string, unknown> | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

export interface CallOptions {
  token?: string;
  signal?: AbortSignal;
  /** Answer null for a 404 instead of throwing (panels whose API may not exist yet). */
  allow404?: boolean;
}

/** Calls the API with the session's token; a 401 ends the session. JSON in and out. */
export async function api<T = unknown>(method: string, path: string, body?: unknown, opts: CallOptions = {}): Promise<T> {
  const token = opts.token ?? current?.token;
  const headers: Record<string, string> = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: opts.signal, cache: "no-store" });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, { title: "Network error", detail: "The API did not answer; check the connection and try again." });
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  if (res.ok) return json as T;
  if (res.status === 404 && opts.allow404) return null as T;
  const problem: Problem = json && typeof json === "object" ? (json as Problem) : { status: res.status, title: res.statusText, detail: text.slice(0, 300) };
  if (res.status === 401 && !opts.token && current) signOut("Your session has ended (the API answered 401): sign in again.");
  throw new ApiError(res.status, problem);
}

/** Path segments are user data: always encoded. */
export const enc = encodeURIComponent;
export const acct = () => enc(current?.account ?? "");

export interface Page<T> {
  totalSize: number;
  page: number;
  size: number;
  results: T[];
}

/**
 * Follows an execution's log as Server-Sent Events (fetch, so the token goes in a header;
 * EventSource cannot send one). Reconnects after a dropped stream with Last-Event-ID until the
 * execution ends. Answers a function that stops following.
 */
export function followLog(path: string, on: { text(t: string): void; end(status: string): void; error?(e: unknown): void }): () => void {
  const ctrl = new AbortController();
  let lastId = "";
  let ended = false;
  const run = async () => {
    let failures = 0;
    while (!ended && !ctrl.signal.aborted) {
      try {
        const headers: Record<string, string> = { accept: "text/event-stream", authorization: `Bearer ${current?.token ?? ""}` };
        if (lastId) headers["last-event-id"] = lastId;
        const res = await fetch(`${path}?follow=true`, { headers, signal: ctrl.signal, cache: "no-store" });
        if (res.status === 401) {
          signOut("Your session has ended (the API answered 401): sign in again.");
          return;
        }
        if (!res.ok || !res.body) throw new ApiError(res.status, { detail: `The log answered ${res.status}.` });
        failures = 0;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, "\n");
          let i: number;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let event = "message";
            const data: string[] = [];
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              const c = line.indexOf(":");
              const field = c < 0 ? line : line.slice(0, c);
              const v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
              if (field === "data") data.push(v);
              else if (field === "event") event = v;
              else if (field === "id") lastId = v;
            }
            if (event === "end") {
              ended = true;
              on.end(data.join("\n"));
            } else if (data.length) on.text(data.join("\n"));
          }
        }
      } catch (e) {
        if (ctrl.signal.aborted) return;
        failures++;
        on.error?.(e);
      }
      if (!ended && !ctrl.signal.aborted) await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** Math.min(failures, 5))));
    }
  };
  void run();
  return () => ctrl.abort();
}
