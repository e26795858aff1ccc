/**
 * The execution's event log, in the object's SQLite: `events` (dense sequence 1, 2, …, what the
 * status service and the log answer) and `held` (agent events that arrived ahead of a gap, kept
 * until the gap fills: an upload is stored in the agent's order, whatever order batches arrive
 * in). Also the live log's followers, woken when something is appended or the status changes.
 * The tables' names and columns are stored data: never rename them.
 */
import type { LogChunk, StatusEventWire } from "../domain/contracts";
import type { AgentEvent, ExecutionStatus } from "../schemas/execution";
import { TERMINAL } from "./machine";

export const EVENT_TABLES = `
  CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    type TEXT NOT NULL,
    host TEXT, task TEXT, play TEXT,
    stdout TEXT NOT NULL DEFAULT '',
    data TEXT,
    lease_gen INTEGER NOT NULL,
    agent_seq INTEGER
  );
  CREATE UNIQUE INDEX IF NOT EXISTS events_by_agent_seq ON events (lease_gen, agent_seq) WHERE agent_seq IS NOT NULL;
  CREATE TABLE IF NOT EXISTS held (lease_gen INTEGER NOT NULL, agent_seq INTEGER NOT NULL, json TEXT NOT NULL, PRIMARY KEY (lease_gen, agent_seq)) WITHOUT ROWID;
`;

/** Out-of-order events are held at most this far ahead of the last stored one. */
const MAX_HELD_AHEAD = 10_000;
/** A follower waits at most this long per call (the route calls again). */
const MAX_FOLLOW_WAIT_MS = 30_000;
/** Status details longer than this are cut in the event. */
const MAX_DETAIL = 4000;

/** What the log reads and advances of the object's state (the State satisfies it). */
export interface LogState {
  id: string;
  accountAlias: string;
  jobId: string;
  status: ExecutionStatus;
  /** The sequence the next event gets. */
  nextSeq: number;
  /** The current lease's generation: agent `seq` numbers count within one lease. */
  leaseGen: number;
  /** The last agent `seq` stored in this lease. */
  acceptedThrough: number;
}

/** What a status-change event says (the State satisfies it). */
export interface StatusSource extends LogState {
  reason: string | null;
  attempt: number;
  agentId: string | null;
  /** What started the execution: a schedule-started one says so in every status event. */
  trigger: string;
  scheduleId: string | null;
}

/** An event just stored: what the webhooks decide on. */
export interface Appended {
  seq: number;
  type: string;
  data: string | null;
  ts: number;
}

interface EventRow extends Record<string, SqlStorageValue> {
  seq: number;
  ts: number;
  type: string;
  host: string | null;
  task: string | null;
  play: string | null;
  stdout: string;
  data: string | null;
}

type NewEvent = Pick<EventRow, "ts" | "type" | "host" | "task" | "play" | "stdout" | "data"> & { agentSeq: number | null };

export class EventLog {
  private readonly followers = new Set<() => void>();

  /** `appended` sees every event as it is stored, inside the caller's write (the webhooks' outbox entries). */
  constructor(
    private readonly sql: SqlStorage,
    private readonly appended: (e: Appended) => void = () => {},
  ) {}

  private append(s: LogState, e: NewEvent): void {
    this.sql.exec(
      "INSERT INTO events (seq, ts, type, host, task, play, stdout, data, lease_gen, agent_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      s.nextSeq,
      e.ts,
      e.type,
      e.host,
      e.task,
      e.play,
      e.stdout,
      e.data,
      s.leaseGen,
      e.agentSeq,
    );
    const seq = s.nextSeq;
    s.nextSeq += 1;
    this.appended({ seq, type: e.type, data: e.data, ts: e.ts });
  }

  /** Records the status `s` has just entered (from `from`; null for the first). */
  statusChanged(s: StatusSource, from: ExecutionStatus | null, now: number, detail?: string): void {
    if (detail && detail.length > MAX_DETAIL) detail = `${detail.slice(0, MAX_DETAIL)}…`;
    const line = `[runner] execution ${s.status}${s.reason ? ` (${s.reason})` : ""}${detail ? `: ${detail}` : ""}\n`;
    this.append(s, {
      ts: now,
      type: "execution_status",
      host: null,
      task: null,
      play: null,
      stdout: line,
      data: JSON.stringify({
        status: s.status,
        previous_status: from,
        reason: s.reason,
        attempt: s.attempt,
        agent_id: s.agentId,
        detail: detail ?? null,
        trigger: s.trigger,
        schedule_id: s.scheduleId,
      }),
      agentSeq: null,
    });
  }

  /** Records why the PENDING execution waits now (a line per change of the reason). */
  waiting(s: StatusSource, code: string, text: string, now: number): void {
    this.append(s, {
      ts: now,
      type: "execution_waiting",
      host: null,
      task: null,
      play: null,
      stdout: `[runner] execution ${s.status}: ${text}\n`,
      data: JSON.stringify({ status: s.status, waiting_reason: text, code, attempt: s.attempt }),
      agentSeq: null,
    });
  }

  /**
   * Stores a batch of the lease's agent events in their `seq` order: the next one is stored, one
   * ahead of a gap is held, a duplicate is dropped; a gap this batch fills releases the held events
   * behind it. `stored` sees each event as it is stored. Run it inside the caller's transaction.
   */
  storeBatch(s: LogState, events: AgentEvent[], stored: (e: AgentEvent) => void): void {
    const store = (e: AgentEvent) => {
      this.storeOne(s, e);
      stored(e);
    };
    for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
      if (e.seq <= s.acceptedThrough || e.seq > s.acceptedThrough + MAX_HELD_AHEAD) continue; // a duplicate, or absurdly far ahead
      if (e.seq === s.acceptedThrough + 1) store(e);
      else this.sql.exec("INSERT OR IGNORE INTO held (lease_gen, agent_seq, json) VALUES (?, ?, ?)", s.leaseGen, e.seq, JSON.stringify(e));
    }
    this.releaseHeld(s, store);
  }

  /**
   * Stores `count` agent events that follow the last stored one in order (seqs acceptedThrough + 1,
   * …), from the JSON text of their array, in one statement: what `storeBatch` would store for them
   * when nothing but the log sees each event (the caller checks: no callback is owed events, none
   * is a `playbook_on_stats`). Then releases what was held behind them, through `stored`.
   */
  storeRun(s: LogState, json: string, count: number, stored: (e: AgentEvent) => void): void {
    this.sql.exec(
      `INSERT INTO events (seq, ts, type, host, task, play, stdout, data, lease_gen, agent_seq)
       SELECT ? + key, value ->> 'timestamp', value ->> 'event_type', value ->> 'host', value ->> 'task', value ->> 'play',
              coalesce(value ->> 'stdout', ''), value -> 'data', ?, value ->> 'seq'
       FROM json_each(?)`,
      s.nextSeq,
      s.leaseGen,
      json,
    );
    s.nextSeq += count;
    s.acceptedThrough += count;
    this.releaseHeld(s, (e) => {
      this.storeOne(s, e);
      stored(e);
    });
  }

  private storeOne(s: LogState, e: AgentEvent): void {
    this.append(s, {
      ts: e.timestamp,
      type: e.event_type,
      host: e.host ?? null,
      task: e.task ?? null,
      play: e.play ?? null,
      stdout: e.stdout ?? "",
      data: e.data === undefined ? null : JSON.stringify(e.data),
      agentSeq: e.seq,
    });
    s.acceptedThrough = e.seq;
  }

  /** Stores the held events that now follow the last stored one, and drops those behind it. */
  private releaseHeld(s: LogState, store: (e: AgentEvent) => void): void {
    for (;;) {
      const next = this.sql
        .exec<{ json: string }>("SELECT json FROM held WHERE lease_gen = ? AND agent_seq = ?", s.leaseGen, s.acceptedThrough + 1)
        .toArray()[0];
      if (!next) break;
      store(JSON.parse(next.json) as AgentEvent);
    }
    this.sql.exec("DELETE FROM held WHERE lease_gen = ? AND agent_seq <= ?", s.leaseGen, s.acceptedThrough);
  }

  /** The execution ended: events still waiting for a gap never will. */
  dropHeld(): void {
    this.sql.exec("DELETE FROM held");
  }

  count(s: Pick<LogState, "nextSeq">): number {
    return s.nextSeq - 1;
  }

  /** Status events: page `page` of `size` after sequence `after` (keyset). */
  page(s: LogState, after: number, page: number, size: number): { totalSize: number; results: StatusEventWire[] } {
    const from = after + page * size; // sequences are dense (1, 2, …), so a page is a key range
    const rows = this.sql
      .exec<EventRow>("SELECT seq, ts, type, host, task, play, stdout, data FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", from, from + size)
      .toArray();
    return { totalSize: Math.max(0, this.count(s) - after), results: rows.map((r) => statusEventOf(s, r)) };
  }

  /** One status event, in the status service's shape; null when there is none at `seq`. */
  one(s: LogState, seq: number): StatusEventWire | null {
    const r = this.sql.exec<EventRow>("SELECT seq, ts, type, host, task, play, stdout, data FROM events WHERE seq = ?", seq).toArray()[0];
    return r ? statusEventOf(s, r) : null;
  }

  /**
   * The log after sequence `after`, at most about `maxBytes` (at least one event). With `waitMs`,
   * waits that long (30 s at most) for something new when nothing is there yet and the execution
   * is live. `current` is read after the wait: the state may have moved meanwhile.
   */
  async chunk(current: () => LogState, after: number, maxBytes: number, waitMs: number): Promise<LogChunk> {
    const before = current();
    if (waitMs > 0 && this.count(before) <= after && !TERMINAL.has(before.status)) await this.follow(Math.min(waitMs, MAX_FOLLOW_WAIT_MS));
    let text = "";
    let through = after;
    // The cursor streams rows: stop reading once the chunk is full.
    for (const r of this.sql.exec<{ seq: number; stdout: string }>("SELECT seq, stdout FROM events WHERE seq > ? ORDER BY seq", after)) {
      if (text.length > 0 && text.length + r.stdout.length > maxBytes) break;
      text += r.stdout;
      through = r.seq;
      if (text.length >= maxBytes) break;
    }
    const s = current();
    return { text, through, ended: TERMINAL.has(s.status) && through >= this.count(s), status: s.status };
  }

  /** Followers waiting now (each is removed when its wait ends: woken or timed out). */
  followerCount(): number {
    return this.followers.size;
  }

  /** Wakes every follower (something was appended, or the status changed). */
  wake(): void {
    for (const w of [...this.followers]) w();
  }

  private follow(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.followers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.followers.add(done);
    });
  }
}

function statusEventOf(s: LogState, r: EventRow): StatusEventWire {
  return {
    id: `${s.id}:${r.seq}`,
    sequence: r.seq,
    timestamp: r.ts,
    event_type: r.type,
    job_id: s.jobId,
    execution_id: s.id,
    account_alias: s.accountAlias,
    host: r.host,
    task: r.task,
    play: r.play,
    message: r.stdout,
    data: r.data,
    notifications: [],
  };
}
