// Uploads an execution's events in batches (≤ 2,000 events, < 1 MiB, about every 250 ms), numbered
// from 1, resending from the server's acceptedThrough so that nothing is lost or stored twice.
//
// While the API is slow or unreachable the backlog grows: the oldest events stay in memory (up to
// 10,000 events or 16 MiB), newer ones are spooled to disk (spool.ts) and read back in order as
// the backlog shrinks. The spool is bounded too (512 MiB): beyond it raw output lines (`verbose`)
// are dropped, said by a marker event, while the playbook's structured events are still kept.
import { ApiError, type EventsAnswer } from "./api-client.ts";
import { eventBytes } from "./events.ts";
import { silentLogger, type Logger } from "./log.ts";
import { Backoff, sleep } from "./retry.ts";
import { Spool } from "./spool.ts";
import type { AgentCommand, EventInput, WireEvent } from "./types.ts";

/**
 * Events per upload (the API takes 2,000 since round two of the performance work; an older API
 * refuses more than 500 with a 400, and the uploader then halves the batch until it is taken).
 */
export const MAX_BATCH_EVENTS = 2000;
export const MEMORY_EVENTS = 10_000;
export const MEMORY_BYTES = 16 * 1024 * 1024;
export const SPOOL_MAX_BYTES = 512 * 1024 * 1024;
/** Bytes of events per upload (the API takes bodies up to 1 MiB). */
export const MAX_BATCH_BYTES = 900_000;

export interface UploaderOptions {
  send(events: WireEvent[], signal: AbortSignal): Promise<EventsAnswer>;
  onCommand?(cmd: Exclude<AgentCommand, null>): void;
  /** A failure that ends the upload: 401 (credential revoked) or 409 abandon. */
  onFatal?(err: ApiError): void;
  intervalMs?: number;
  maxEvents?: number;
  maxBytes?: number;
  backoff?: Backoff;
  log?: Logger;
  /** Aborting it stops the uploader, like stop(). */
  signal?: AbortSignal;
  /**
   * Where the backlog beyond the memory cap goes: a directory of the agent's own and a file name
   * unique to the lease. Without it the whole backlog stays in memory.
   */
  spool?: { dir: string; name: string; maxBytes?: number };
  /** The backlog kept in memory before spooling (default MEMORY_EVENTS / MEMORY_BYTES). */
  memoryEvents?: number;
  memoryBytes?: number;
}

interface Queued {
  event: WireEvent;
  bytes: number;
}

/**
 * The events not yet accepted, oldest first. A head index instead of Array#shift: with a large
 * backlog (a chatty playbook while the API is slow or away) shifting is O(n) per event and would
 * block the event loop for long stretches.
 */
class EventQueue {
  private items: Queued[] = [];
  private head = 0;
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }
  first(): Queued | undefined {
    return this.items[this.head];
  }
  push(q: Queued): void {
    this.items.push(q);
    this.bytes += q.bytes;
  }
  replaceFirst(q: Queued): void {
    const old = this.items[this.head];
    if (!old) return;
    this.bytes += q.bytes - old.bytes;
    this.items[this.head] = q;
  }
  /** Drops events up to and including `seq`. */
  dropThrough(seq: number): void {
    while (this.head < this.items.length && this.items[this.head]!.event.seq <= seq) {
      this.bytes -= this.items[this.head]!.bytes;
      this.head++;
    }
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
  *[Symbol.iterator](): IterableIterator<Queued> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!;
  }
}

export class Uploader {
  private readonly opts: UploaderOptions;
  private readonly log: Logger;
  private readonly queue = new EventQueue();
  private readonly backoff: Backoff;
  private readonly stopper = new AbortController();
  private nextSeq = 1;
  private acceptedThrough = 0;
  /** When the oldest event not yet handed to `send` was queued: a batch goes 250 ms after it. */
  private firstQueuedAt = 0;
  /** Every queued event is in a batch sent (or being sent): the next one queued starts the wait. */
  private allSent = true;
  private flushWanted = false;
  private wake: (() => void) | null = null;
  private flushWaiters: (() => void)[] = [];
  private loopDone: Promise<void>;
  private gaveUp = false;
  private readonly spool: Spool | null;
  private readonly memoryEvents: number;
  private readonly memoryBytes: number;
  /** Output lines dropped since the spool filled up (0: not dropping). */
  private dropped = 0;
  private droppedBytes = 0;
  private retryWake: (() => void) | null = null;
  /** An upload on its way: settles once its answer is taken in. */
  private sending: Promise<void> | null = null;
  /** Sending paused: the queued events wait to go with the final status (hold()). */
  private holding = false;
  /** Batches sent, for tests and figures. */
  batches = 0;

  constructor(opts: UploaderOptions) {
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
    this.backoff = opts.backoff ?? new Backoff();
    this.memoryEvents = opts.memoryEvents ?? MEMORY_EVENTS;
    this.memoryBytes = opts.memoryBytes ?? MEMORY_BYTES;
    this.spool = opts.spool
      ? new Spool(opts.spool.dir, opts.spool.name, (err) => this.log.error("could not spool events to disk; keeping them in memory", { error: err.message }))
      : null;
    opts.signal?.addEventListener("abort", () => void this.stop(), { once: true });
    this.loopDone = this.loop();
  }

  get lastAccepted(): number {
    return this.acceptedThrough;
  }

  /** Events not yet accepted, in memory and spooled. */
  get pending(): number {
    return this.queue.length + (this.spool?.count ?? 0);
  }

  /** The spool's files in use (tests). */
  get spoolFiles(): string[] {
    return this.spool?.files ?? [];
  }

  /** Numbers the event and queues it (in memory, else in the spool); null when it is dropped. */
  push(e: EventInput): WireEvent | null {
    if (this.gaveUp || this.stopper.signal.aborted) return null;
    const spool = this.spool;
    const spilling = !!spool && (spool.count > 0 || this.queue.length >= this.memoryEvents || this.queue.bytes >= this.memoryBytes);
    const full = spilling && spool!.bytes >= (this.opts.spool?.maxBytes ?? SPOOL_MAX_BYTES);
    // Raw output goes first when even the spool is full: the task results still tell what happened.
    if (full && e.event_type === "verbose") {
      if (!this.dropped++) {
        this.log.error("the event spool is full: dropping output lines until it drains", { spoolBytes: spool!.bytes });
        this.enqueue(
          marker(
            "[runner-agent: the API has been unreachable so long that this execution's event spool is full: output lines are dropped until it drains; task results are kept]\n",
            {
              spool_full: true,
            },
          ),
        );
      }
      this.droppedBytes += Buffer.byteLength(e.stdout, "utf8");
      return null;
    }
    if (!full) this.endDrop();
    return this.enqueue(e);
  }

  private enqueue(e: EventInput): WireEvent {
    const event: WireEvent = { seq: this.nextSeq++, ...e };
    if (this.allSent) {
      this.firstQueuedAt = Date.now();
      this.allSent = false;
    }
    const spool = this.spool;
    if (spool && (spool.count > 0 || this.queue.length >= this.memoryEvents || this.queue.bytes >= this.memoryBytes)) {
      if (!spool.count) this.log.warn("the upload backlog is beyond what is kept in memory: spooling events to disk", { backlog: this.queue.length });
      spool.append(event);
    } else {
      this.queue.push({ event, bytes: eventBytes(event) });
    }
    this.poke();
    return event;
  }

  /** A spell of dropped output is over (or the run is): says how much went. */
  private endDrop(): void {
    if (!this.dropped || this.gaveUp || this.stopper.signal.aborted) return;
    const n = this.dropped;
    const bytes = this.droppedBytes;
    this.dropped = 0;
    this.droppedBytes = 0;
    this.enqueue(
      marker(`[runner-agent: ${n} output line events (${bytes} bytes) were dropped while the event spool was full]\n`, {
        dropped_events: n,
        dropped_bytes: bytes,
      }),
    );
  }

  /** Resolves when every event pushed so far is accepted (or the uploader stopped or gave up). */
  flush(): Promise<void> {
    this.endDrop();
    if (!this.pending || this.gaveUp || this.stopper.signal.aborted) return Promise.resolve();
    this.flushWanted = true;
    this.poke();
    return new Promise((res) => this.flushWaiters.push(res));
  }

  /**
   * Pauses sending so that the events still queued go with the final status in one call (`held()`,
   * then `delivered()` with its answer); an upload on its way is answered first, so that a command
   * in its answer still counts. False, and nothing paused, when they would not fit in one call (or
   * cannot be sent at all): the caller flushes instead.
   */
  async hold(): Promise<boolean> {
    this.endDrop();
    this.holding = true;
    while (this.sending) await this.sending;
    const fits =
      !this.gaveUp &&
      !this.stopper.signal.aborted &&
      !this.spool?.count &&
      this.queue.length <= (this.opts.maxEvents ?? MAX_BATCH_EVENTS) &&
      this.queue.bytes <= (this.opts.maxBytes ?? MAX_BATCH_BYTES);
    if (!fits) this.resume();
    return fits;
  }

  /** The events held for the final status (they stay queued until `delivered`), and their size. */
  held(): { events: WireEvent[]; bytes: number } {
    return { events: [...this.queue].map((q) => q.event), bytes: this.queue.bytes };
  }

  /** The final status's answer stored the held events through `through`; sending goes on for the rest. */
  delivered(through: number | undefined): void {
    if (through !== undefined) this.accept(through);
    this.resume();
    this.settleFlushes();
  }

  /** Sending goes on (after `hold()`). */
  resume(): void {
    this.holding = false;
    this.poke();
  }

  /** Stops uploading (what is still queued is dropped, the spool removed) and waits for the loop to end. */
  async stop(): Promise<void> {
    this.stopper.abort();
    this.poke();
    this.retryWake?.();
    this.settleFlushes();
    await this.loopDone;
    this.spool?.close();
  }

  /** The API answers again (a heartbeat got through): a failed upload is retried now, not after its backoff. */
  retryNow(): void {
    this.retryWake?.();
  }

  /** Waits `ms` before a retry; cut short by stop() or retryNow(). */
  private async retryDelay(ms: number): Promise<void> {
    const wake = new AbortController();
    this.retryWake = () => wake.abort();
    await sleep(ms, AbortSignal.any([this.stopper.signal, wake.signal]));
    this.retryWake = null;
  }

  /** Moves spooled events into memory, in order, once memory has room for a good share of them. */
  private refill(): void {
    const spool = this.spool;
    if (!spool?.count || this.queue.length > this.memoryEvents / 2 || this.queue.bytes > this.memoryBytes / 2) return;
    let read: ReturnType<Spool["read"]>;
    try {
      read = spool.read(this.memoryEvents - this.queue.length, this.memoryBytes - this.queue.bytes);
    } catch (err) {
      // The files were damaged or removed under us: what is left cannot be sent in order, and the
      // server would wait for the gap for ever. The run goes on and still reports its outcome.
      this.log.error("could not read the spooled events back; giving up on uploading this execution's events", { error: (err as Error).message });
      this.gaveUp = true;
      spool.close();
      this.settleFlushes();
      return;
    }
    for (const q of read) this.queue.push(q);
    if (!spool.count) this.log.info("the spooled events are read back: the upload backlog fits in memory again");
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private settleFlushes(): void {
    if (this.pending && !this.gaveUp && !this.stopper.signal.aborted) return;
    const ws = this.flushWaiters;
    this.flushWaiters = [];
    this.flushWanted = false;
    for (const w of ws) w();
  }

  private ready(): boolean {
    if (this.holding) return false;
    this.refill();
    if (!this.queue.length) return false;
    if (this.flushWanted) return true;
    const maxEvents = this.opts.maxEvents ?? MAX_BATCH_EVENTS;
    if (this.queue.length >= maxEvents || this.queue.bytes >= (this.opts.maxBytes ?? MAX_BATCH_BYTES)) return true;
    return Date.now() - this.firstQueuedAt >= (this.opts.intervalMs ?? 250);
  }

  private async waitForWork(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted && !this.ready()) {
      const wait = this.pending && !this.holding ? Math.max(1, (this.opts.intervalMs ?? 250) - (Date.now() - this.firstQueuedAt)) : 60_000;
      await new Promise<void>((res) => {
        const t = setTimeout(res, wait);
        this.wake = () => {
          clearTimeout(t);
          res();
        };
      });
      this.wake = null;
    }
  }

  private take(): WireEvent[] {
    const maxEvents = this.opts.maxEvents ?? MAX_BATCH_EVENTS;
    const maxBytes = this.opts.maxBytes ?? MAX_BATCH_BYTES;
    const batch: WireEvent[] = [];
    let bytes = 0;
    for (const q of this.queue) {
      if (batch.length >= maxEvents || (batch.length && bytes + q.bytes > maxBytes)) break;
      batch.push(q.event);
      bytes += q.bytes;
    }
    return batch;
  }

  private accept(through: number): void {
    if (through > this.acceptedThrough) this.acceptedThrough = through;
    this.queue.dropThrough(this.acceptedThrough);
    this.refill();
  }

  private async loop(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      await this.waitForWork();
      if (signal.aborted) break;
      const batch = this.take();
      if (!batch.length) continue;
      // What arrives while this batch is on its way waits for its own 250 ms: without this, a
      // steady stream would go out as back-to-back uploads of a few events each.
      if (batch.length === this.pending) this.allSent = true;
      const before = this.acceptedThrough;
      try {
        const answer = await this.send(batch, signal);
        if (this.acceptedThrough <= before && this.queue.length) {
          // The server holds back (a gap it is still waiting for): resend from there, but not in a tight loop.
          this.log.warn("the API did not accept the batch; resending", { acceptedThrough: answer.acceptedThrough, first: batch[0]!.seq });
          await this.retryDelay(this.backoff.next());
        } else {
          this.backoff.reset();
        }
      } catch (err) {
        if (signal.aborted) break;
        const e = ApiError.from(err);
        if (e.unauthorized || e.abandon) {
          this.gaveUp = true;
          this.spool?.close();
          this.opts.onFatal?.(e);
          break;
        }
        if (e.retryable) {
          const delay = e.retryAfterMs ?? this.backoff.next();
          this.log.warn("event upload failed; retrying", { error: e.message, retryInMs: delay, failures: this.backoff.failures, backlog: this.pending });
          await this.retryDelay(delay);
          continue;
        }
        this.repair(batch, e);
      }
      this.settleFlushes();
    }
    this.settleFlushes();
  }

  /** One upload, its answer taken in (accepted events dropped, its command passed on) before `sending` settles. */
  private async send(batch: WireEvent[], signal: AbortSignal): Promise<EventsAnswer> {
    const p = this.opts.send(batch, signal).then((answer) => {
      this.batches++;
      this.accept(answer.acceptedThrough);
      if (answer.command) this.opts.onCommand?.(answer.command);
      return answer;
    });
    this.sending = p.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await p;
    } finally {
      this.sending = null;
    }
  }

  /**
   * A batch the server refuses outright (4xx): never drop sequence numbers (the server would wait
   * for the gap forever). Split it; a single event that is still refused becomes a placeholder.
   */
  private repair(batch: WireEvent[], e: ApiError): void {
    this.log.error("the API refused an event batch", { status: e.status, error: e.message, first: batch[0]!.seq, count: batch.length });
    if (batch.length > 1) {
      this.opts.maxEvents = Math.max(1, Math.floor(batch.length / 2));
      return;
    }
    const q = this.queue.first();
    if (!q) return;
    if (q.event.event_type === "runner_agent_placeholder" || (q.event.data as { placeholder?: boolean }).placeholder) {
      this.log.error("giving up on uploading this execution's events");
      this.gaveUp = true;
      this.spool?.close();
      return;
    }
    const placeholder: WireEvent = {
      seq: q.event.seq,
      timestamp: q.event.timestamp,
      event_type: "verbose",
      play: null,
      task: null,
      host: null,
      stdout: `[runner-agent: an event (${q.event.event_type}) could not be uploaded: ${e.status}]\n`,
      data: { placeholder: true },
    };
    this.queue.replaceFirst({ event: placeholder, bytes: eventBytes(placeholder) });
  }
}

/** An event of the agent's own in the log (the output dropped, and how much). */
function marker(stdout: string, data: Record<string, unknown>): EventInput {
  return { timestamp: Date.now(), event_type: "verbose", play: null, task: null, host: null, stdout, data: { runner_agent: true, ...data } };
}
