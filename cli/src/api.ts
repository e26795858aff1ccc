// The Runner API over fetch: JSON in and out, problem+json errors kept whole.
import { VERSION } from "./version.ts";

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
  [k: string]: unknown;
}

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;
  constructor(message: string, status: number, problem: Problem | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }
}

export interface Page<T> {
  totalSize: number;
  page: number;
  size: number;
  results: T[];
}

export class Api {
  readonly url: string;
  private readonly token: string | undefined;

  constructor(url: string, token?: string) {
    this.url = url.replace(/\/+$/, "");
    this.token = token;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { accept: "application/json", "user-agent": `runner-cli/${VERSION} node/${process.versions.node}`, ...extra };
    if (this.token) h.authorization = `Bearer ${this.token}`;
    return h;
  }

  async raw(method: string, path: string, init: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const headers = this.headers(init.headers);
    let body: string | undefined;
    if (init.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(init.body);
    }
    let res: Response;
    try {
      res = await fetch(this.url + path, { method, headers, body, signal: init.signal });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(`${method} ${path}: cannot reach ${this.url} (${cause?.code ?? cause?.message ?? (err as Error).message})`, 0);
    }
    if (res.status >= 400) {
      const text = await res.text().catch(() => "");
      let problem: Problem | null = null;
      try {
        const j = JSON.parse(text) as unknown;
        if (j && typeof j === "object") problem = j as Problem;
      } catch {
        /* not JSON */
      }
      const what = problem?.detail || problem?.title || text.slice(0, 200) || res.statusText;
      throw new ApiError(`${method} ${path}: ${res.status} ${what}`, res.status, problem);
    }
    return res;
  }

  async json<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.raw(method, path, { body });
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
}

/** Reads a Server-Sent Events stream; calls `onEvent` per message. Resolves when the stream ends. */
export async function readSse(res: Response, onEvent: (e: { event: string; id?: string; data: string }) => void): Promise<void> {
  if (!res.body) return;
  const decoder = new TextDecoder();
  let buf = "";
  let event = "message";
  let id: string | undefined;
  let data: string[] = [];
  const dispatch = () => {
    if (data.length) onEvent({ event, id, data: data.join("\n") });
    event = "message";
    data = [];
  };
  const line = (l: string) => {
    if (l === "") return dispatch();
    if (l.startsWith(":")) return;
    const i = l.indexOf(":");
    const field = i < 0 ? l : l.slice(0, i);
    const value = i < 0 ? "" : l.slice(i + 1).replace(/^ /, "");
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id") id = value;
  };
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      const m = /\r\n|\n|\r/.exec(buf.slice(nl))![0];
      line(buf.slice(0, nl));
      buf = buf.slice(nl + m.length);
    }
  }
  if (buf) line(buf);
  dispatch();
}
