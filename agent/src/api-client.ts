// HTTP client for the agent protocol (docs/agent-protocol.md). One method per call; every failure
// becomes an ApiError that says whether it may be retried.
import { httpFetch, type HttpAnswer, type HttpFetch } from "./http-fetch.ts";
import type * as P from "./protocol.ts";
import type { AgentCommand, Lease, LeaseRef, RegisterAnswer, StatusReport, WireEvent } from "./types.ts";

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  command?: string;
  [k: string]: unknown;
}

export class ApiError extends Error {
  /** HTTP status, or 0 when no answer came (network error, timeout). */
  readonly status: number;
  readonly problem: Problem | null;
  /** Milliseconds the server asked us to wait (Retry-After), if any. */
  readonly retryAfterMs: number | null;

  constructor(message: string, status: number, problem: Problem | null = null, retryAfterMs: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
    this.retryAfterMs = retryAfterMs;
  }

  /**
   * Any error as an ApiError: an ApiError as it is, anything else (a bug, a transport failure
   * outside `request`) as status 0, which is retried like a network error.
   */
  static from(err: unknown): ApiError {
    if (err instanceof ApiError) return err;
    return new ApiError(String((err as Error | undefined)?.message ?? err), 0);
  }

  /** Network errors, timeouts, 5xx and 429 are worth retrying; other 4xx are not. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status === 408 || this.status >= 500;
  }

  /** 401: the credential is revoked or unknown. The agent exits. */
  get unauthorized(): boolean {
    return this.status === 401;
  }

  /**
   * 409 with command "abandon": the execution is not ours (any more): kill it and forget it.
   * A 404 on an execution's own path means the same: there is nothing left to report to.
   */
  get abandon(): boolean {
    return (this.status === 409 && this.problem?.command === "abandon") || this.status === 404;
  }
}

export interface ApiClientOptions {
  url: string;
  credential?: string;
  version: string;
  /** Per-request timeout for calls other than the long poll. */
  timeoutMs?: number;
  /** The HTTP of every call (default: `httpFetch`, node:http; the metrics wrap it). */
  fetch?: HttpFetch;
}

/** What the agent registers with: the protocol's body, with what it always sends required. */
export type RegisterBody = Omit<P.AgentRegister, "version" | "hostname" | "concurrency"> &
  Required<Pick<P.AgentRegister, "concurrency">> & { version: string; hostname: string };

export type HeartbeatAnswer = P.AgentAnswer;
export type EventsAnswer = P.AgentAnswer & { acceptedThrough: number };
/** With `events` in the report, `acceptedThrough` says how far they are stored. */
export type StatusAnswer = Omit<P.AgentAnswer, "leaseExpiresAt"> & { status?: string; acceptedThrough?: number };

function command(v: unknown): AgentCommand {
  return v === "stop" || v === "kill" ? v : null;
}

function retryAfter(h: string | null): number | null {
  if (!h) return null;
  const secs = Number(h);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(h);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : null;
}

export class ApiClient {
  readonly baseUrl: string;
  private credential: string | undefined;
  private readonly version: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: HttpFetch;
  /** Server clock minus ours, from the Date header of the last answer (1 s resolution). */
  clockOffsetMs = 0;

  constructor(opts: ApiClientOptions) {
    this.baseUrl = opts.url.endsWith("/") ? opts.url : opts.url + "/";
    this.credential = opts.credential;
    this.version = opts.version;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.fetchImpl = opts.fetch ?? httpFetch;
  }

  setCredential(credential: string): void {
    this.credential = credential;
  }

  /** A server timestamp (epoch ms) in this machine's clock. */
  toLocalTime(serverMs: number): number {
    return serverMs - this.clockOffsetMs;
  }

  async request(
    method: string,
    path: string,
    body: unknown,
    opts: { signal?: AbortSignal; timeoutMs?: number; bearer?: string } = {},
  ): Promise<{ status: number; json: unknown }> {
    const url = new URL(path, this.baseUrl);
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": `runner-agent/${this.version} node/${process.versions.node}`,
    };
    const bearer = opts.bearer ?? this.credential;
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let res: HttpAnswer;
    try {
      res = await this.fetchImpl(url, { method, headers, body: payload, signal });
    } catch (err) {
      const why = timeout.aborted ? "timed out" : opts.signal?.aborted ? "aborted" : errorText(err);
      throw new ApiError(`${method} ${url.pathname}: ${why}`, 0);
    }
    const date = res.headers.get("date");
    if (date) {
      const server = Date.parse(date);
      if (Number.isFinite(server)) this.clockOffsetMs = server + 500 - Date.now();
    }
    const text = await res.text().catch(() => "");
    let json: unknown = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (res.status >= 400) {
      const problem = json && typeof json === "object" ? (json as Problem) : null;
      const what = problem?.detail || problem?.title || text.slice(0, 200) || res.statusText;
      throw new ApiError(`${method} ${url.pathname}: ${res.status} ${what}`, res.status, problem, retryAfter(res.headers.get("retry-after")));
    }
    return { status: res.status, json };
  }

  async register(body: RegisterBody, operatorToken?: string): Promise<RegisterAnswer> {
    const { json } = await this.request("POST", "agent/register", body, { bearer: operatorToken ?? "" });
    const a = json as RegisterAnswer | null;
    if (!a || typeof a.credential !== "string" || typeof a.agentId !== "string") {
      throw new ApiError("POST /agent/register: the answer has no agentId/credential", 502);
    }
    return a;
  }

  /** Long poll: a lease, or null when no work came within `waitMs`. */
  async lease(body: Required<P.LeaseRequest>, signal?: AbortSignal): Promise<Lease | null> {
    const { status, json } = await this.request("POST", "agent/lease", body, { signal, timeoutMs: body.waitMs + 15_000 });
    if (status === 204 || !json) return null;
    return json as Lease;
  }

  async heartbeat(executionId: string, ref: LeaseRef, signal?: AbortSignal): Promise<HeartbeatAnswer> {
    const body: LeaseRef = { attempt: ref.attempt, leaseId: ref.leaseId };
    const { json } = await this.request("POST", `agent/executions/${encodeURIComponent(executionId)}/heartbeat`, body, { signal });
    const a = (json ?? {}) as { leaseExpiresAt?: number; command?: unknown };
    return { leaseExpiresAt: a.leaseExpiresAt, command: command(a.command) };
  }

  async status(executionId: string, body: StatusReport & LeaseRef, signal?: AbortSignal): Promise<StatusAnswer> {
    const { json } = await this.request("POST", `agent/executions/${encodeURIComponent(executionId)}/status`, body, { signal });
    const a = (json ?? {}) as { status?: string; command?: unknown; acceptedThrough?: unknown };
    const out: StatusAnswer = { status: a.status, command: command(a.command) };
    if (typeof a.acceptedThrough === "number") out.acceptedThrough = a.acceptedThrough;
    return out;
  }

  async events(executionId: string, body: LeaseRef & { events: WireEvent[] }, signal?: AbortSignal): Promise<EventsAnswer> {
    const { json } = await this.request("POST", `agent/executions/${encodeURIComponent(executionId)}/events`, body, { signal });
    const a = (json ?? {}) as { acceptedThrough?: unknown; command?: unknown; leaseExpiresAt?: unknown };
    const through = typeof a.acceptedThrough === "number" ? a.acceptedThrough : NaN;
    if (!Number.isFinite(through)) throw new ApiError("POST events: the answer has no acceptedThrough", 502);
    const out: EventsAnswer = { acceptedThrough: through, command: command(a.command) };
    if (typeof a.leaseExpiresAt === "number") out.leaseExpiresAt = a.leaseExpiresAt;
    return out;
  }

  async release(executionId: string, ref: LeaseRef, signal?: AbortSignal): Promise<void> {
    const body: LeaseRef = { attempt: ref.attempt, leaseId: ref.leaseId };
    await this.request("POST", `agent/executions/${encodeURIComponent(executionId)}/release`, body, { signal });
  }
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    const c = cause instanceof Error ? ((cause as Error & { code?: string }).code ?? cause.message) : undefined;
    return c ? `${err.message} (${c})` : err.message;
  }
  return String(err);
}
