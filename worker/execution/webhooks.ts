/**
 * Which stored events each of the execution's callbacks is owed (by its level), as outbox entries
 * written in the same transaction as the event: a crash between storing an event and queueing its
 * delivery loses nothing, the outbox's retry sends it. Also keeps, for a final status that some
 * callback is owed, the execution as it was then, so the delivery (and any redelivery) carries the
 * outcome it announces even after a restart has moved the execution on.
 *
 * Levels (README, "Webhooks"): DEBUG every event; ERROR failed, unreachable and async-failed events
 * and the failed ends (FAILURE, INIT_FAILURE, KILLED, a stop by the TTL); RESULT the final status.
 */
import type { CallbackLevel, CallbackTarget } from "../domain/contracts";
import type { ExecutionStatus, ExecutionView } from "../schemas/execution";
import { TERMINAL } from "./machine";
import type { OutboxEntry } from "./outbox";

export const WEBHOOK_TABLES = "CREATE TABLE IF NOT EXISTS webhook_finals (seq INTEGER PRIMARY KEY, json TEXT NOT NULL);";

/** An event as it was just stored. */
export interface StoredEvent {
  seq: number;
  type: string;
  /** The event's data as stored (JSON text). */
  data: string | null;
  ts: number;
}

/** What the module reads and advances of the object's state (the State satisfies it). */
export interface WebhookState {
  callbacks: CallbackTarget[];
  /** The last delivery sequence per URL. */
  webhookSeq: Record<string, number>;
  outbox: OutboxEntry[];
}

/** Ansible's events that report a failure on a host. */
const FAILED_EVENTS: ReadonlySet<string> = new Set(["runner_on_failed", "runner_on_unreachable", "runner_on_async_failed"]);
const FAILED_ENDS: ReadonlySet<ExecutionStatus> = new Set(["FAILURE", "INIT_FAILURE", "KILLED"]);

interface StatusData {
  status?: ExecutionStatus;
  reason?: string | null;
  ignore_errors?: boolean;
}

function parse(data: string | null): StatusData {
  if (!data) return {};
  try {
    const v = JSON.parse(data) as unknown;
    return typeof v === "object" && v !== null ? (v as StatusData) : {};
  } catch {
    return {};
  }
}

/** Whether the final status: an `execution_status` event into a terminal state. */
export function isFinal(type: string, data: string | null): boolean {
  if (type !== "execution_status") return false;
  const status = parse(data).status;
  return status !== undefined && TERMINAL.has(status);
}

/** Whether a callback at `level` is owed the event. */
export function owed(level: CallbackLevel, type: string, data: string | null): boolean {
  if (level === "DEBUG") return true;
  if (type === "execution_status") {
    const d = parse(data);
    if (!d.status || !TERMINAL.has(d.status)) return false;
    if (level === "RESULT") return true;
    return FAILED_ENDS.has(d.status) || (d.status === "STOPPED" && d.reason === "ttl_expired");
  }
  // A failure the play said to ignore (`ignore_errors`) is not an error: the run goes on as if it passed.
  return level === "ERROR" && FAILED_EVENTS.has(type) && !(type === "runner_on_failed" && parse(data).ignore_errors === true);
}

export class Webhooks {
  constructor(private readonly sql: SqlStorage) {}

  /**
   * Queues the event for every callback owed it. `view` is the execution now (taken only for a
   * final status). Run it where the event is stored, before the state is saved.
   */
  stored(s: WebhookState, e: StoredEvent, view: () => ExecutionView): void {
    let any = false;
    s.callbacks.forEach((cb, i) => {
      if (!owed(cb.level, e.type, e.data)) return;
      const sequence = (s.webhookSeq[cb.url] ?? 0) + 1;
      s.webhookSeq[cb.url] = sequence;
      s.outbox.push({ kind: "webhook", callback: i, event: e.seq, eventType: e.type, sequence, at: e.ts });
      any = true;
    });
    if (any && isFinal(e.type, e.data)) this.sql.exec("INSERT OR REPLACE INTO webhook_finals (seq, json) VALUES (?, ?)", e.seq, JSON.stringify(view()));
  }

  /** The execution as it was at the final status `seq`; null for any other event. */
  finalView(seq: number): ExecutionView | null {
    const row = this.sql.exec<{ json: string }>("SELECT json FROM webhook_finals WHERE seq = ?", seq).toArray()[0];
    return row ? (JSON.parse(row.json) as ExecutionView) : null;
  }
}
