/**
 * The Execution object's write-through to the world outside it (docs/DESIGN.md, "Storage split"):
 * the D1 index row (the newest version wins there), and an ordered list of deliveries, one
 * destination kind per entry. Entries of one kind leave in the order they were made, one flush at
 * a time; a failure keeps that kind's entries for the alarm's retry (backoff from 2 s to a minute)
 * while the other kinds go on: a queue that refuses webhooks must not keep the dispatcher from
 * hearing that an execution finished (and freeing its slot).
 *
 * A new destination is one more entry kind: a member of `OutboxEntry` and one in `DESTINATIONS`.
 */
import { writeIndex, type IndexWrite } from "../db/executions";
import { insertDeliveries, type NewDelivery } from "../db/webhooks";
import type { CallbackMessage, CallbackTarget, DispatchItem } from "../domain/contracts";
import { backoffMs } from "../lib/backoff";
import { deliveryId } from "../lib/ids";
import { log } from "../lib/log";

/** A call owed to the execution's Dispatcher object. */
export interface DispatcherEntry {
  kind: "dispatcher";
  op: "enqueue" | "remove" | "finished";
  at: number;
}

/** An event owed to one of the execution's callbacks (webhooks.ts decides which): recorded in D1, then queued by reference. */
export interface WebhookEntry {
  kind: "webhook";
  /** Index into the execution's `callbacks`. */
  callback: number;
  /** The event's sequence. */
  event: number;
  eventType: string;
  /** The delivery's sequence, per execution and URL. */
  sequence: number;
  at: number;
}

export type OutboxEntry = DispatcherEntry | WebhookEntry;
export type OutboxKind = OutboxEntry["kind"];

/** What the outbox reads and writes of the object's state (the State satisfies it). */
export interface OutboxState {
  id: string;
  accountAlias: string;
  jobId: string;
  dispatcherKey: string;
  callbacks: CallbackTarget[];
  version: number;
  indexedVersion: number;
  outbox: OutboxEntry[];
  retryAt: number | null;
  retries: number;
}

/** What the outbox needs of the object. */
export interface OutboxHost {
  readonly env: Pick<Env, "DB" | "DISPATCHER" | "CALLBACKS">;
  /** The state to write through; null before the execution exists. */
  current(): OutboxState | null;
  /** The index row of the current version. */
  indexRow(): IndexWrite;
  /** Persists the state (after the outbox changed it). */
  save(): void;
}

type Deliver<E extends OutboxEntry> = (entries: E[], s: OutboxState, env: OutboxHost["env"]) => Promise<void>;

/** How each kind of entry is delivered, and how many consecutive ones of it go in one call. */
const DESTINATIONS: { [K in OutboxKind]: { batch: number; deliver: Deliver<Extract<OutboxEntry, { kind: K }>> } } = {
  dispatcher: {
    batch: 1,
    deliver: async ([e], s, env) => {
      const stub = env.DISPATCHER.get(env.DISPATCHER.idFromName(s.dispatcherKey));
      if (e!.op === "enqueue") {
        const item: DispatchItem = { executionId: s.id, accountAlias: s.accountAlias, jobId: s.jobId, enqueuedAt: e!.at };
        await stub.enqueue(item);
      } else if (e!.op === "remove") await stub.remove(s.id);
      else await stub.finished(s.id);
    },
  },
  // Pending rows first (the deliveries list shows them at once), then the queue messages; both
  // are idempotent by delivery id, so a retry after a partial success repeats nothing visible.
  // 100 is the most one sendBatch takes.
  webhook: {
    batch: 100,
    deliver: async (entries, s, env) => {
      const rows: NewDelivery[] = await Promise.all(
        entries.map(async (e) => {
          const cb = s.callbacks[e.callback]!;
          return {
            id: await deliveryId(s.id, e.callback, e.event),
            account_alias: s.accountAlias,
            job_id: s.jobId,
            execution_id: s.id,
            callback_index: e.callback,
            url: cb.url,
            level: cb.level,
            event_seq: e.event,
            event_type: e.eventType,
            sequence: e.sequence,
            created_time: e.at,
          };
        }),
      );
      await env.DB.batch(insertDeliveries(env.DB, rows));
      await env.CALLBACKS.sendBatch(
        rows.map((r) => {
          const body: CallbackMessage = {
            deliveryId: r.id,
            accountAlias: r.account_alias,
            executionId: r.execution_id,
            eventSeq: r.event_seq,
            callbackIndex: r.callback_index,
          };
          return { body };
        }),
      );
    },
  },
};

const RETRY_BASE_MS = 2_000;
const RETRY_MAX_MS = 60_000;

/** Queues a call to the execution's dispatcher. */
export function toDispatcher(s: Pick<OutboxState, "outbox">, op: DispatcherEntry["op"], at: number): void {
  s.outbox.push({ kind: "dispatcher", op, at });
}

/** Whether entries of `kind` are still waiting. */
export function pending(s: Pick<OutboxState, "outbox">, kind: OutboxKind): boolean {
  return s.outbox.some((e) => e.kind === kind);
}

/** Entries stored before kinds existed were all the dispatcher's (`{op, at}`). */
export function upgradeOutbox(entries: (Omit<OutboxEntry, "kind"> & { kind?: OutboxKind })[] | undefined): OutboxEntry[] {
  return (entries ?? []).map((e) => ({ ...e, kind: e.kind ?? "dispatcher" }) as OutboxEntry);
}

export class Outbox {
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly host: OutboxHost) {}

  /** Single-flight: index writes and deliveries leave in the order they were made. */
  flush(): Promise<void> {
    const run = this.chain.then(() => this.flushOnce());
    this.chain = run.catch(() => undefined);
    return this.chain;
  }

  private async flushOnce(): Promise<void> {
    const s = this.host.current();
    if (!s) return;
    let failed = false;
    if (s.indexedVersion < s.version) {
      const row = this.host.indexRow();
      try {
        await writeIndex(this.host.env.DB, row);
        s.indexedVersion = Math.max(s.indexedVersion, row.version);
      } catch (e) {
        failed = true;
        log.error("execution: index write-through failed; retrying", { executionId: s.id, error: e });
      }
    }
    // The index row first: nothing else leaves before the row that describes it.
    const blocked = new Set<OutboxKind>(failed ? (Object.keys(DESTINATIONS) as OutboxKind[]) : []);
    let i = 0;
    while (i < s.outbox.length) {
      const first = s.outbox[i]!;
      if (blocked.has(first.kind)) {
        i++;
        continue;
      }
      const d = DESTINATIONS[first.kind] as { batch: number; deliver: Deliver<OutboxEntry> };
      let j = i + 1;
      while (j < s.outbox.length && j - i < d.batch && s.outbox[j]!.kind === first.kind) j++;
      try {
        await d.deliver(s.outbox.slice(i, j), s, this.host.env);
        // Only appends happen meanwhile (flushes are single-flight), so the run is still at i.
        s.outbox.splice(i, j - i);
      } catch (e) {
        failed = true;
        blocked.add(first.kind); // its later entries wait too: each kind keeps its order
        log.error("execution: delivery failed; retrying", { executionId: s.id, kind: first.kind, entries: j - i, error: e });
        i = j;
      }
    }
    if (failed) {
      s.retries += 1;
      s.retryAt = Date.now() + backoffMs(s.retries, RETRY_BASE_MS, RETRY_MAX_MS);
    } else {
      s.retries = 0;
      s.retryAt = null;
    }
    this.host.save();
  }
}
