// The API client's HTTP, on node:http/node:https rather than the global fetch: fetch loads
// undici, which alone keeps ~10 MiB more resident in an idle agent (docs/BENCHMARKS.md, item 7)
// than these modules do. Only what the client uses: a JSON text body, an AbortSignal, the status,
// a few headers and the text of the answer; redirects are followed as fetch follows them.
import type { IncomingMessage } from "node:http";

// Not `import … from "node:http"`: an ES import of node:http reads every export, and its
// WebSocket getter loads undici all the same.
const http = process.getBuiltinModule("node:http");
// TLS is loaded with the first https call (~4 MiB resident): an agent of a plain-http API never does.
let https: { module: typeof import("node:https"); agent: import("node:https").Agent } | undefined;
function httpsOnce() {
  if (!https) {
    const module = process.getBuiltinModule("node:https");
    https = { module, agent: new module.Agent({ keepAlive: true }) };
  }
  return https;
}

export interface HttpAnswer {
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

export interface HttpInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal | null;
}

/** What the client calls: the global fetch fits it too. */
export type HttpFetch = (url: URL, init: HttpInit) => Promise<HttpAnswer>;

const MAX_REDIRECTS = 20;
// Connections are kept for the next call (the long poll, heartbeats and uploads reuse them).
const httpAgent = new http.Agent({ keepAlive: true });

function abortError(signal: AbortSignal): Error {
  const reason = signal.reason as unknown;
  if (reason instanceof Error) return reason;
  return Object.assign(new Error("This operation was aborted"), { name: "AbortError" });
}

function once(url: URL, init: HttpInit): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const signal = init.signal;
    if (signal?.aborted) return reject(abortError(signal));
    const protocol = url.protocol as "http:" | "https:";
    if (protocol !== "http:" && protocol !== "https:") return reject(new TypeError(`unsupported protocol ${url.protocol}`));
    const headers: Record<string, string | number> = { ...init.headers };
    if (init.body !== undefined) headers["content-length"] = Buffer.byteLength(init.body);
    const options = { method: init.method ?? "GET", headers };
    const req =
      protocol === "https:" ? httpsOnce().module.request(url, { ...options, agent: httpsOnce().agent }) : http.request(url, { ...options, agent: httpAgent });
    const onAbort = () => req.destroy(abortError(signal!));
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => signal?.removeEventListener("abort", onAbort);
    req.on("response", (res) => {
      res.on("close", done);
      resolve(res);
    });
    req.on("error", (err) => {
      done();
      reject(err);
    });
    req.end(init.body);
  });
}

function readText(res: IncomingMessage, signal?: AbortSignal | null): Promise<string> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      res.destroy();
      return reject(abortError(signal));
    }
    const chunks: Buffer[] = [];
    const onAbort = () => res.destroy(abortError(signal!));
    signal?.addEventListener("abort", onAbort, { once: true });
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    res.on("error", reject);
    res.on("close", () => {
      signal?.removeEventListener("abort", onAbort);
      if (!res.complete) reject(new Error("the answer was cut off"));
    });
  });
}

/** A fetch for JSON calls over node:http(s). */
export const httpFetch: HttpFetch = async (url, init) => {
  let target = new URL(url);
  let current: HttpInit = init;
  for (let hops = 0; ; hops++) {
    const res = await once(target, current);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (status >= 300 && status < 400 && status !== 304 && location && hops < MAX_REDIRECTS) {
      res.resume(); // the redirect's own body is not read
      const next = new URL(location, target);
      const headers = { ...current.headers };
      // As fetch does: no credentials to another origin; 303 (and 301/302 of a POST) become a GET.
      if (next.origin !== target.origin) delete headers.authorization;
      const toGet = status === 303 || ((status === 301 || status === 302) && current.method === "POST");
      if (toGet) delete headers["content-type"];
      current = { ...current, headers, ...(toGet ? { method: "GET", body: undefined } : {}) };
      target = next;
      continue;
    }
    const text = readText(res, init.signal);
    text.catch(() => {}); // read on demand; an unread failure is not an unhandled rejection
    return {
      status,
      statusText: res.statusMessage ?? "",
      headers: {
        get: (name: string) => {
          const v = res.headers[name.toLowerCase()];
          return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
        },
      },
      text: () => text,
    };
  }
};
