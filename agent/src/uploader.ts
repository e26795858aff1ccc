// Uploads an execution's events in batches (≤ 500 events, < 1 MiB, about every 250 ms), numbered
// from 1, resending from the server's acceptedThrough so that nothing is lost or stored twice.
import { ApiError, type EventsAnswer } from "./api-client.ts";
import { eventBytes } from "./events.ts";
import { silentLogger, type Logger } from "./log.ts";
import { Backoff, sleep } from "./retry.ts";
import type { AgentCommand, EventInput, WireEvent } from "./types.ts";

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
  private firstQueuedAt = 0;
  private flushWanted = false;
  private wake: (() => void) | null = null;
  private flushWaiters: (() => void)[] = [];
  private loopDone: Promise<void>;
  private gaveUp = false;
  /** Batches sent, for tests and figures. */
  batches = 0;

  constructor(opts: UploaderOptions) {
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
    this.backoff = opts.backoff ?? new Backoff();
    opts.signal?.addEventListener("abort", () => void this.stop(), { once: true });
    this.loopDone = this.loop();
  }

  get lastAccepted(): number {
    return this.acceptedThrough;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Numbers the event and queues it. */
  push(e: EventInput): WireEvent {
    const event: WireEvent = { seq: this.nextSeq++, ...e };
    if (this.gaveUp || this.stopper.signal.aborted) return event;
    if (!this.queue.length) this.firstQueuedAt = Date.now();
    this.queue.push({ event, bytes: eventBytes(event) });
    this.poke();
    return event;
  }

  /** Resolves when every event pushed so far is accepted (or the uploader stopped or gave up). */
  flush(): Promise<void> {
    if (!this.queue.length || this.gaveUp || this.stopper.signal.aborted) return Promise.resolve();
    this.flushWanted = true;
    this.poke();
    return new Promise((res) => this.flushWaiters.push(res));
  }

  /** Stops uploading (what is still queued is dropped) and waits for the loop to end. */
  async stop(): Promise<void> {
    this.stopper.abort();
    this.poke();
    this.settleFlushes();
    await this.loopDone;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private settleFlushes(): void {
    if (this.queue.length && !this.gaveUp && !this.stopper.signal.aborted) return;
    const ws = this.flushWaiters;
    this.flushWaiters = [];
    this.flushWanted = false;
    for (const w of ws) w();
  }

  private ready(): boolean {
    if (!this.queue.length) return false;
    if (this.flushWanted) return true;
    const maxEvents = this.opts.maxEvents ?? 500;
    if (this.queue.length >= maxEvents || this.queue.bytes >= (this.opts.maxBytes ?? 900_000)) return true;
    return Date.now() - this.firstQueuedAt >= (this.opts.intervalMs ?? 250);
  }

  private async waitForWork(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted && !this.ready()) {
      const wait = this.queue.length ? Math.max(1, (this.opts.intervalMs ?? 250) - (Date.now() - this.firstQueuedAt)) : 60_000;
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
    const maxEvents = this.opts.maxEvents ?? 500;
    const maxBytes = this.opts.maxBytes ?? 900_000;
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
    if (this.queue.length) this.firstQueuedAt = Math.min(this.firstQueuedAt, Date.now());
  }

  private async loop(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      await this.waitForWork();
      if (signal.aborted) break;
      const batch = this.take();
      if (!batch.length) continue;
      const before = this.acceptedThrough;
      try {
        const answer = await this.opts.send(batch, signal);
        this.batches++;
        this.accept(answer.acceptedThrough);
        if (answer.command) this.opts.onCommand?.(answer.command);
        if (this.acceptedThrough <= before && this.queue.length) {
          // The server holds back (a gap it is still waiting for): resend from there, but not in a tight loop.
          this.log.warn("the API did not accept the batch; resending", { acceptedThrough: answer.acceptedThrough, first: batch[0]!.seq });
          await sleep(this.backoff.next(), signal);
        } else {
          this.backoff.reset();
        }
      } catch (err) {
        if (signal.aborted) break;
        const e = ApiError.from(err);
        if (e.unauthorized || e.abandon) {
          this.gaveUp = true;
          this.opts.onFatal?.(e);
          break;
        }
        if (e.retryable) {
          const delay = e.retryAfterMs ?? this.backoff.next();
          this.log.warn("event upload failed; retrying", { error: e.message, retryInMs: delay, failures: this.backoff.failures });
          await sleep(delay, signal);
          continue;
        }
        this.repair(batch, e);
      }
      this.settleFlushes();
    }
    this.settleFlushes();
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
