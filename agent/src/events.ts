// Turning what Ansible (through the callback plugin) and its output streams produce into events.
import type { EventInput } from "./types.ts";

/** One event must fit a batch (1 MiB) with room to spare; bigger results are trimmed. */
export const MAX_EVENT_BYTES = 256 * 1024;
const MAX_STDOUT_CHARS = 64 * 1024;

export function eventBytes(e: unknown): number {
  return Buffer.byteLength(JSON.stringify(e), "utf8");
}

function cutText(s: string, max: number): string {
  if (s.length <= max) return s;
  const head = Math.floor(max * 0.75);
  const tail = max - head;
  return `${s.slice(0, head)}\n… [${s.length - max} characters cut by runner-agent] …\n${s.slice(s.length - tail)}`;
}

const clip = (s: string | null, max: number) => (s !== null && s.length > max ? s.slice(0, max - 1) + "…" : s);

/**
 * Keeps an event within what the API stores (play/task ≤ 1024, host ≤ 255 characters) and under
 * MAX_EVENT_BYTES: trims stdout, then replaces the structured result by a summary.
 */
export function limitEvent(e: EventInput, maxBytes = MAX_EVENT_BYTES): EventInput {
  if ((e.play?.length ?? 0) > 1024 || (e.task?.length ?? 0) > 1024 || (e.host?.length ?? 0) > 255) {
    e = { ...e, play: clip(e.play, 1024), task: clip(e.task, 1024), host: clip(e.host, 255) };
  }
  let size = eventBytes(e);
  if (size <= maxBytes) return e;
  const out: EventInput = { ...e, stdout: cutText(e.stdout, MAX_STDOUT_CHARS) };
  size = eventBytes(out);
  if (size <= maxBytes) return out;
  const data: Record<string, unknown> = { truncated: true, originalBytes: size };
  for (const [k, v] of Object.entries(e.data ?? {})) {
    if (v === null || typeof v === "number" || typeof v === "boolean" || (typeof v === "string" && v.length < 1024)) data[k] = v;
  }
  const result = (e.data as { result?: Record<string, unknown> } | undefined)?.result;
  if (result && typeof result === "object") {
    const summary: Record<string, unknown> = {};
    for (const k of ["changed", "failed", "skipped", "unreachable", "rc", "msg"]) {
      const v = result[k];
      if (v === undefined) continue;
      summary[k] = typeof v === "string" ? cutText(v, 4096) : v;
    }
    data.result = summary;
  }
  out.data = data;
  if (eventBytes(out) > maxBytes) out.stdout = cutText(out.stdout, 8 * 1024);
  return out;
}

interface PluginRecord {
  event?: unknown;
  ts?: unknown;
  play?: unknown;
  task?: unknown;
  host?: unknown;
  stdout?: unknown;
  data?: unknown;
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : v == null ? null : String(v));

/** Parses one line written by the callback plugin; null when it is not one of its records. */
export function parsePluginLine(line: string): EventInput | null {
  let rec: PluginRecord;
  try {
    rec = JSON.parse(line) as PluginRecord;
  } catch {
    return null;
  }
  if (!rec || typeof rec !== "object" || typeof rec.event !== "string") return null;
  return {
    timestamp: typeof rec.ts === "number" ? Math.round(rec.ts) : Date.now(),
    event_type: rec.event,
    play: str(rec.play),
    task: str(rec.task),
    host: str(rec.host),
    stdout: typeof rec.stdout === "string" ? rec.stdout : "",
    data: rec.data && typeof rec.data === "object" && !Array.isArray(rec.data) ? (rec.data as Record<string, unknown>) : {},
  };
}

/** Raw output lines no callback produced (warnings, errors before the playbook starts). */
export function verboseEvent(lines: string[], stream: "stdout" | "stderr" | "events"): EventInput {
  return {
    timestamp: Date.now(),
    event_type: "verbose",
    play: null,
    task: null,
    host: null,
    stdout: lines.join("\n") + "\n",
    data: { stream },
  };
}
