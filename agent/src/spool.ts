// The part of an execution's upload backlog that does not fit in memory: events on disk, oldest
// first, in files of the agent's state directory that only the agent can read (0600: events carry
// the playbook's output). The uploader keeps the oldest events in memory and spills the newer ones
// here while the API is slow or away, and reads them back in order as the backlog shrinks.
//
// Append-only JSON lines in segments of SEGMENT_BYTES: a segment is removed as soon as everything
// in it has been read back, so what is on disk is about what is still unsent. Synchronous I/O: the
// uploader's push() is synchronous (events must keep their order), and the writes are buffered.
import { closeSync, mkdirSync, openSync, readSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { WireEvent } from "./types.ts";

/** A segment is closed for writing at this size (a few of them on disk at most beyond the unsent part). */
const SEGMENT_BYTES = 16 * 1024 * 1024;
/** Appends are written once this much is buffered (and before any read). */
const WRITE_BUFFER_BYTES = 1024 * 1024;
const READ_CHUNK_BYTES = 1024 * 1024;

interface Segment {
  path: string;
  fd: number;
  /** Bytes in the file. */
  size: number;
  /** Where the next read starts. */
  readAt: number;
}

export interface SpooledEvent {
  event: WireEvent;
  bytes: number;
}

export class Spool {
  private readonly dir: string;
  private readonly name: string;
  private readonly onError: (err: Error) => void;
  private segments: Segment[] = [];
  private nextSegment = 1;
  /** Lines not written yet (newer than anything in the segments); read from here directly. */
  private buffer: string[] = [];
  private bufferHead = 0;
  private bufferBytes = 0;
  private closed = false;
  private failing = false;
  /** Buffered bytes at which the next write is tried (further on after a failure). */
  private writeAt = WRITE_BUFFER_BYTES;
  /** Events in the spool not yet read back. */
  count = 0;

  /**
   * `name` is unique to the execution and its lease (files are `<name>.<n>.jsonl` in `dir`).
   * `onError`: a write failed (a full disk): what could not be written stays in memory, and
   * writing is tried again later.
   */
  constructor(dir: string, name: string, onError: (err: Error) => void = () => {}) {
    this.dir = dir;
    this.name = name.replace(/[^A-Za-z0-9._-]/g, "_");
    this.onError = onError;
  }

  /** Bytes the spool takes on disk and in its write buffer: what its bound is counted against. */
  get bytes(): number {
    let n = this.bufferBytes;
    for (const s of this.segments) n += s.size;
    return n;
  }

  /** The files in use (tests). */
  get files(): string[] {
    return this.segments.map((s) => s.path);
  }

  append(e: WireEvent): void {
    if (this.closed) return;
    const line = `${JSON.stringify(e)}\n`;
    this.buffer.push(line);
    this.bufferBytes += Buffer.byteLength(line, "utf8");
    this.count++;
    if (this.bufferBytes >= this.writeAt) this.writeBuffer();
  }

  /** Reads back, oldest first, until `maxEvents` or about `maxBytes` (at least one event if any). */
  read(maxEvents: number, maxBytes: number): SpooledEvent[] {
    const out: SpooledEvent[] = [];
    let bytes = 0;
    while (!this.closed && out.length < maxEvents && bytes < maxBytes && this.segments.length) {
      const seg = this.segments[0]!;
      if (seg.readAt >= seg.size) {
        // Read through: nothing more comes to it (what is newer is in the buffer or a later segment).
        this.drop(this.segments.shift()!);
        continue;
      }
      let chunk = Buffer.alloc(Math.min(READ_CHUNK_BYTES, seg.size - seg.readAt));
      let got = readSync(seg.fd, chunk, 0, chunk.length, seg.readAt);
      let end = chunk.lastIndexOf(10, got - 1);
      // A line longer than the chunk (events are at most a few hundred KiB): read more of it.
      while (end < 0 && seg.readAt + got < seg.size) {
        const bigger = Buffer.alloc(Math.min(chunk.length * 2, seg.size - seg.readAt));
        chunk.copy(bigger, 0, 0, got);
        got += readSync(seg.fd, bigger, got, bigger.length - got, seg.readAt + got);
        chunk = bigger;
        end = chunk.lastIndexOf(10, got - 1);
      }
      if (end < 0) throw new Error(`spool ${seg.path}: a truncated line at ${seg.readAt}`);
      let start = 0;
      while (start <= end && out.length < maxEvents && bytes < maxBytes) {
        const nl = chunk.indexOf(10, start);
        out.push({ event: JSON.parse(chunk.toString("utf8", start, nl)) as WireEvent, bytes: nl - start });
        bytes += nl - start;
        start = nl + 1;
      }
      seg.readAt += start;
    }
    while (!this.closed && out.length < maxEvents && bytes < maxBytes && this.bufferHead < this.buffer.length) {
      const line = this.buffer[this.bufferHead++]!;
      const n = Buffer.byteLength(line, "utf8");
      this.bufferBytes -= n;
      out.push({ event: JSON.parse(line) as WireEvent, bytes: n - 1 });
      bytes += n - 1;
    }
    if (this.bufferHead === this.buffer.length) {
      this.buffer = [];
      this.bufferHead = 0;
    }
    this.count -= out.length;
    if (!this.count) this.reset();
    return out;
  }

  /** Removes every file (the execution is over, or the uploader gave up). */
  close(): void {
    this.closed = true;
    this.reset();
    this.count = 0;
  }

  /** Nothing left to read: no file stays behind. */
  private reset(): void {
    for (const s of this.segments) this.drop(s);
    this.segments = [];
    this.buffer = [];
    this.bufferHead = 0;
    this.bufferBytes = 0;
  }

  private writeBuffer(): void {
    if (this.bufferHead === this.buffer.length) return;
    try {
      let seg = this.segments.at(-1);
      if (!seg || seg.size >= SEGMENT_BYTES) {
        mkdirSync(this.dir, { recursive: true, mode: 0o700 });
        const path = join(this.dir, `${this.name}.${this.nextSegment++}.jsonl`);
        // 0600, and a file of our own: never one planted at that name (O_EXCL).
        seg = { path, fd: openSync(path, "wx+", 0o600), size: 0, readAt: 0 };
        this.segments.push(seg);
      }
      const data = Buffer.from(this.buffer.slice(this.bufferHead).join(""), "utf8");
      let off = 0;
      while (off < data.length) off += writeSync(seg.fd, data, off, data.length - off, seg.size + off);
      seg.size += data.length;
      this.buffer = [];
      this.bufferHead = 0;
      this.bufferBytes = 0;
      this.failing = false;
      this.writeAt = WRITE_BUFFER_BYTES;
    } catch (err) {
      // Kept in memory rather than lost; said once per spell of failures.
      if (!this.failing) this.onError(err as Error);
      this.failing = true;
      this.writeAt = this.bufferBytes + WRITE_BUFFER_BYTES;
    }
  }

  private drop(s: Segment): void {
    try {
      closeSync(s.fd);
    } catch {
      /* closed already */
    }
    try {
      unlinkSync(s.path);
    } catch {
      /* gone already */
    }
  }
}

/** Removes what an earlier agent process left spooled (its executions were reported lost). */
export function clearSpoolDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
