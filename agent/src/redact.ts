// Redaction of every known secret value from what the agent uploads.
// A secret is matched in the forms it can take in Ansible output: as given, trimmed, base64
// encoded or decoded (keys arrive as base64 of PEM text), line by line (a key printed by `cat`),
// and JSON-escaped (a PEM inside a JSON string has `\n` escapes).
//
// Only text is redacted: output, messages, string values. Never keys, event types, host names or
// any other field the protocol reads, so that a short secret ("ok") cannot break an upload or a
// status report; a secret shorter than SHORT is masked only where it stands as a whole word.
import type { EventInput, StatusReport } from "./types.ts";

export const MASK = "********";

const PEM_ARMOR = /^-----(BEGIN|END) [A-Z0-9 ]+-----$/;
/** Lines of a multi-line secret shorter than this are not redacted on their own (too common). */
const MIN_LINE = 8;
/** Derived forms (base64, decoded) shorter than this are skipped; the value as given never is. */
const MIN_DERIVED = 4;
/** Forms shorter than this are masked only as whole words ("ok" in "ok: [web1]", not in "token"). */
const SHORT = 4;
const WORD = /[\p{L}\p{N}_]/u;

function decodeBase64Text(s: string): string | null {
  const compact = s.replace(/\s+/g, "");
  if (compact.length < 8 || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return null;
  const buf = Buffer.from(compact, "base64");
  const text = buf.toString("utf8");
  // Only text that round-trips and is printable is a useful form (binary data is not printed as such).
  if (!Buffer.from(text, "utf8").equals(buf)) return null;
  if (/[\x00-\x08\x0e-\x1f\x7f]/.test(text)) return null;
  return text;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Every form in which `secret` may show up in output. */
export function secretForms(secret: string): string[] {
  const forms = new Set<string>();
  const add = (s: string | null | undefined, min: number) => {
    if (s && s.trim().length >= min) forms.add(s);
  };
  const texts = [secret];
  const decoded = decodeBase64Text(secret);
  if (decoded !== null) texts.push(decoded);
  add(secret, 1);
  add(secret.trim(), 1);
  for (const t of texts) {
    add(t, MIN_DERIVED);
    add(t.trim(), MIN_DERIVED);
    const lf = t.replace(/\r\n/g, "\n");
    add(lf, MIN_DERIVED);
    add(lf.trim(), MIN_DERIVED);
    add(Buffer.from(t, "utf8").toString("base64"), MIN_DERIVED);
    add(Buffer.from(t.trim(), "utf8").toString("base64"), MIN_DERIVED);
    if (/[\r\n]/.test(t)) {
      for (const line of t.split(/\r?\n/)) {
        const l = line.trim();
        if (l.length >= MIN_LINE && !PEM_ARMOR.test(l)) forms.add(l);
      }
    }
  }
  // The text as it appears inside a JSON string in printed output (the default callback prints
  // results as JSON: a password with a quote, backslash, tab or newline shows escaped), as Python
  // writes it with and without ensure_ascii, and escaped twice (JSON inside a JSON string).
  for (const f of [...forms]) {
    for (const e of jsonEscapes(f)) if (e !== f) add(e, f.trim() === secret.trim() ? 1 : MIN_DERIVED);
  }
  return [...forms];
}

/** `s` escaped as in a JSON string: as JSON.stringify writes it, as Python's ensure_ascii writes it, and twice. */
function jsonEscapes(s: string): string[] {
  const once = JSON.stringify(s).slice(1, -1);
  const ascii = once.replace(/[\u0080-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  const twice = JSON.stringify(once).slice(1, -1);
  return [once, ascii, twice];
}

export class Redactor {
  private secrets: string[] = [];
  private forms: string[] = [];
  private re: RegExp | null = null;
  maxLength = 0;

  constructor(secrets: Iterable<string | null | undefined>) {
    for (const s of secrets) if (typeof s === "string" && s.length > 0) this.secrets.push(s);
    this.build();
  }

  /** Adds a secret found on the way (a password that was inside a repository URL). */
  add(secret: string): void {
    if (!secret) return;
    this.secrets.push(secret);
    this.build();
  }

  private build(): void {
    const forms = new Set<string>();
    for (const s of this.secrets) for (const f of secretForms(s)) forms.add(f);
    this.forms = [...forms].sort((a, b) => b.length - a.length);
    this.maxLength = this.forms[0]?.length ?? 0;
    // One pass to tell whether anything matches at all (the common answer is no).
    this.re = this.forms.length ? new RegExp(this.forms.map(escapeRegExp).join("|")) : null;
  }

  get empty(): boolean {
    return this.re === null;
  }

  /**
   * Ranges to mask in `s`: the union of every occurrence of every form, overlapping ones merged
   * (a plain regex replace would leave the tail of a secret that overlaps an earlier one).
   */
  matches(s: string): { start: number; end: number }[] {
    if (!this.re || !s || !this.re.test(s)) return [];
    const spans: [number, number][] = [];
    for (const f of this.forms) {
      const short = f.trim().length < SHORT;
      for (let i = s.indexOf(f); i !== -1; i = s.indexOf(f, i + 1)) {
        // The end of the text counts as a word boundary: a stream's next chunk may still continue
        // the word, so StreamRedactor holds such a tail back until it knows.
        if (short && ((i > 0 && WORD.test(s[i - 1]!)) || (i + f.length < s.length && WORD.test(s[i + f.length]!)))) continue;
        spans.push([i, i + f.length]);
      }
    }
    spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    const out: { start: number; end: number }[] = [];
    for (const [start, end] of spans) {
      const last = out[out.length - 1];
      if (last && start <= last.end) last.end = Math.max(last.end, end);
      else out.push({ start, end });
    }
    return out;
  }

  text(s: string): string {
    return this.mask(s, this.matches(s));
  }

  /** `s` with the given ranges masked. */
  mask(s: string, ms: { start: number; end: number }[]): string {
    if (!ms.length) return s;
    let out = "";
    let at = 0;
    for (const m of ms) {
      out += s.slice(at, m.start) + MASK;
      at = m.end;
    }
    return out + s.slice(at);
  }

  /** Redacts every string value inside a JSON-like value (never its keys); returns a new value. */
  value<T>(v: T): T {
    if (!this.re) return v;
    return this.walk(v) as T;
  }

  /** An event with its text redacted: stdout, play and task names, the values of its data. */
  event(e: EventInput): EventInput {
    if (!this.re) return e;
    return {
      ...e,
      stdout: this.text(e.stdout),
      play: e.play === null ? null : this.text(e.play),
      task: e.task === null ? null : this.text(e.task),
      data: this.value(e.data),
    };
  }

  /** A status report with its text redacted (detail, the commit's message and author); status, reason, hosts and stats go as they are. */
  report(r: StatusReport): StatusReport {
    if (!this.re) return r;
    const out = { ...r };
    if (out.detail !== undefined) out.detail = this.text(out.detail);
    if (out.repositoryLog) {
      const l = out.repositoryLog;
      out.repositoryLog = { ...l, message: this.text(l.message), author: this.text(l.author), author_email: this.text(l.author_email) };
    }
    return out;
  }

  private walk(v: unknown): unknown {
    if (typeof v === "string") return this.text(v);
    if (Array.isArray(v)) return v.map((x) => this.walk(x));
    if (v && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = this.walk(x);
      return out;
    }
    return v;
  }
}

/**
 * Redacts a text stream that arrives in arbitrary chunks: holds back just enough of the tail
 * that a secret split across two chunks is still recognised whole.
 */
export class StreamRedactor {
  private pending = "";
  private readonly redactor: Redactor;

  constructor(redactor: Redactor) {
    this.redactor = redactor;
  }

  /** Feeds a chunk; returns the text that is safe to pass on now. */
  push(chunk: string): string {
    const buf = this.pending + chunk;
    // One more than the longest form: a short form at the cut needs the character after it.
    if (this.redactor.empty) {
      // Nothing to look for: nothing to hold back (a held tail would reorder output and events).
      this.pending = "";
      return buf;
    }
    const hold = this.redactor.maxLength + 1;
    let cut = buf.length - hold;
    if (cut <= 0) {
      this.pending = buf;
      return "";
    }
    // A masked span across the cut is held back whole (a longer secret overlapping it may still
    // be completing); only a span that starts the buffer is passed on, masked, to make progress.
    const ms = this.redactor.matches(buf);
    for (const m of ms) {
      if (m.start < cut && m.end > cut) {
        cut = m.start > 0 ? m.start : m.end;
        break;
      }
      if (m.start >= cut) break;
    }
    if (cut <= 0) {
      this.pending = buf;
      return "";
    }
    this.pending = buf.slice(cut);
    // Masked as matched in the whole buffer, where a short form's next character is known.
    return this.redactor.mask(
      buf.slice(0, cut),
      ms.filter((m) => m.end <= cut),
    );
  }

  /** The held-back tail, at the end of the stream. */
  end(): string {
    const rest = this.redactor.text(this.pending);
    this.pending = "";
    return rest;
  }
}
