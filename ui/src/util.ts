// Formatting and small helpers shared by the pages.
export const TERMINAL = ["SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"];
export const isTerminal = (status: string | undefined) => TERMINAL.includes(status ?? "");

/** Which actions the execution state machine allows (DESIGN.md "State machine"). */
export const canStop = (s: string) => ["PENDING", "INITIALIZING", "RUNNING", "STOPPING"].includes(s);
export const canKill = (s: string) => ["PENDING", "INITIALIZING", "RUNNING", "STOPPING", "KILLING"].includes(s);
export const canRestart = (s: string) => s === "FAILURE" || s === "INIT_FAILURE";

export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  return new Date(ms).toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined) return "never";
  const d = Math.round((now - ms) / 1000);
  const future = d < 0;
  const a = Math.abs(d);
  const t = a < 60 ? `${a} s` : a < 3600 ? `${Math.floor(a / 60)} min` : a < 86400 ? `${Math.floor(a / 3600)} h` : `${Math.floor(a / 86400)} d`;
  return future ? `in ${t}` : `${t} ago`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms < 0) return "—";
  if (ms < 1000) return `${ms} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h ? `${h} h ${m} min` : `${m} min ${r} s`;
}

/** An execution's run time: the sum of its timers, the open one counted to now. */
export function runTime(timers: { start: number; end: number | null }[] | undefined, now = Date.now()): number | null {
  if (!timers?.length) return null;
  return timers.reduce((sum, t) => sum + ((t.end ?? now) - t.start), 0);
}

export const shortId = (id: string) => (id.length > 12 ? `${id.slice(0, 8)}…` : id);

/** UTF-8 text ↔ base64 (the API's inline playbooks and keys). */
export function toBase64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}
export function fromBase64(b64: string): string | null {
  try {
    const bin = atob(b64.replace(/\s+/g, "").replace(/-/g, "+").replace(/_/g, "/"));
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
}

/** Parses a JSON object typed by the user; throws a message naming what is wrong. */
export function parseJsonObject(text: string, what: string): Record<string, unknown> | undefined {
  if (!text.trim()) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`${what} must be a JSON object ({…})`);
  return v as Record<string, unknown>;
}

export const splitList = (s: string) =>
  s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);

export const pretty = (v: unknown) => JSON.stringify(v, null, 2);

/** Reads a file the user picked as text. */
export function readFileText(file: File): Promise<string> {
  return file.text();
}

/** Runs `fn` over items with at most `n` at once. */
export async function pool<T, R>(items: T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}
