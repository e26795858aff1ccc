/**
 * The Execution object's write-through to the world outside it (docs/DESIGN.md, "Storage split"):
 * the D1 index row (the newest version wins there), and an ordered list of deliveries, one
 * destination kind per entry. Everything leaves in the order it was made, one flush at a time;
 * a failure keeps the rest for the alarm's retry (backoff from 2 s to a minute).
 *
 * A new destination (the callbacks issue's webhooks) is one more entry kind: a member of
 * `OutboxEntry` and a function in `DESTINATIONS`.
 */
import { writeIndex, type IndexWrite } from "../db/executions";
import type { DispatchItem } from "../domain/contracts";
import { backoffMs } from "../lib/backoff";
import { log } from "../lib/log";

/** A call owed to the execution's Dispatcher object. */
export interface DispatcherEntry {
  kind: "dispatcher";
  op: "enqueue" | "remove" | "finished";
  at: number;
}

export type OutboxEntry = DispatcherEntry;
export type OutboxKind = OutboxEntry["kind"];

/** What the outbox reads and writes of the object's state (the State satisfies it). */
export interface OutboxState {
  id: string;
  accountAlias: string;
  jobId: string;
  dispatcherKey: string;
  version: number;
  indexedVersion: number;
  outbox: OutboxEntry[];
  retryAt: number | null;
  retries: number;
}

/** What the outbox needs of the object. */
export interface OutboxHost {
  readonly env: Pick<Env, "DB" | "DISPATCHER">;
  /** The state to write through; null before the execution exists. */
  current(): OutboxState | null;
  /** The index row of the current version. */
  indexRow(): IndexWrite;
  /** Persists the state (after the outbox changed it). */
  save(): void;
}

type Deliver<E extends OutboxEntry> = (entry: E, s: OutboxState, env: OutboxHost["env"]) => Promise<void>;

/** How each kind of entry is delivered. */
const DESTINATIONS: { [K in OutboxKind]: Deliver<Extract<OutboxEntry, { kind: K }>> } = {
  dispatcher: async (e, s, env) => {
    const stub = env.DISPATCHER.get(env.DISPATCHER.idFromName(s.dispatcherKey));
    if (e.op === "enqueue") {
      const item: DispatchItem = { executionId: s.id, accountAlias: s.accountAlias, jobId: s.jobId, enqueuedAt: e.at };
      await stub.enqueue(item);
    } else if (e.op === "remove") await stub.remove(s.id);
    else await stub.finished(s.id);
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
    while (!failed && s.outbox.length) {
      const entry = s.outbox[0]!;
      try {
        await (DESTINATIONS[entry.kind] as Deliver<OutboxEntry>)(entry, s, this.host.env);
        s.outbox.shift();
      } catch (e) {
        failed = true;
        log.error("execution: delivery failed; retrying", { executionId: s.id, kind: entry.kind, op: entry.op, error: e });
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
