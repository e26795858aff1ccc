/**
 * When a schedule fires: cron expressions and dates evaluated in an IANA time zone, through croner
 * (no hand-written parser). DST is handled as Vixie cron does (croner's `fixedTimeRule:
 * "no-wildcard"`): a job at a fixed local time that falls in a spring-forward gap fires once, at
 * the first valid time after it; one in the repeated autumn hour fires once, at its first
 * occurrence; interval jobs (`*` or a step in minute or hour) keep their cadence in real time.
 */
import { Cron } from "croner";
import type { Trigger } from "../schemas/schedule";

const NICKNAMES = new Set(["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"]);

/** The canonical IANA name (`europe/berlin` → `Europe/Berlin`), or null when there is no such zone. */
export function canonicalTimezone(name: string): string | null {
  // Names only: Intl also takes offsets ("+02:00"), which are not zones and know no DST.
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(name)) return null;
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

function cronOf(expression: string, timezone: string): Cron {
  return new Cron(expression.trim().replace(/\s+/g, " "), { timezone, mode: "5-part", fixedTimeRule: "no-wildcard", paused: true });
}

// YYYY-MM-DDTHH:MM[:SS[.fff]][Z|±HH:MM]
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?$/;

/** A date trigger's instant (ms), or why it is not one. Without an offset, it is local time in `timezone`. */
function dateInstant(expression: string, timezone: string): number | string {
  const text = expression.trim().toUpperCase();
  const m = DATE_RE.exec(text);
  if (!m) return "must be an ISO-8601 date-time, e.g. 2030-01-31T09:00:00Z (without an offset it is in `timezone`)";
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? "0"].map(Number) as [number, number, number, number, number, number];
  // Date.UTC rolls 02-30 over into March: a date that does not round-trip does not exist.
  const probe = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (
    probe.getUTCFullYear() !== y ||
    probe.getUTCMonth() !== mo - 1 ||
    probe.getUTCDate() !== d ||
    probe.getUTCHours() !== h ||
    probe.getUTCMinutes() !== mi ||
    probe.getUTCSeconds() !== s
  ) {
    return "is not a real date and time";
  }
  if (m[8]) return Date.parse(text);
  // Local time in the zone (croner resolves the offset, DST gaps included); seconds precision.
  const at = cronOf(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6] ?? "00"}`, timezone);
  const t = at.nextRun(new Date(0));
  return t ? t.getTime() : "is not a time that exists in this time zone";
}

/** The first slot strictly after `after` (ms), or null when there is none. Throws on a bad expression. */
export function nextRunAfter(trigger: Trigger, timezone: string, after: number): number | null {
  if (trigger.type === "date") {
    const at = dateInstant(trigger.expression, timezone);
    if (typeof at === "string") throw new Error(`date ${at}`);
    return at > after ? at : null;
  }
  const next = cronOf(trigger.expression, timezone).nextRun(new Date(after));
  return next ? next.getTime() : null;
}

/**
 * Why a trigger cannot be saved (the message for `<key>.expression`), or its first slot after
 * `now` (null for a date already past when the schedule is saved disabled).
 */
export function checkTrigger(trigger: Trigger, timezone: string, now: number, enabled: boolean): { problem: string } | { next: number | null } {
  if (trigger.type === "date") {
    const at = dateInstant(trigger.expression, timezone);
    if (typeof at === "string") return { problem: at };
    if (at <= now) return enabled ? { problem: "is in the past" } : { next: null };
    return { next: at };
  }
  const expr = trigger.expression.trim();
  if (expr.startsWith("@") && !NICKNAMES.has(expr.toLowerCase())) {
    return { problem: "must be five cron fields or one of @hourly, @daily, @weekly, @monthly, @yearly" };
  }
  if (!expr.startsWith("@") && expr.split(/\s+/).length !== 5) {
    return { problem: "must have five fields: minute hour day-of-month month day-of-week (no seconds, no year)" };
  }
  let next: number | null;
  try {
    next = nextRunAfter(trigger, timezone, now);
  } catch (e) {
    // croner's message names the part it refused ("Invalid value for minute: 61"): no secrets in an expression.
    const why = e instanceof Error ? e.message.replace(/^CronPattern:\s*/, "") : "";
    return { problem: `is not a valid cron expression${why ? ` (${why})` : ""}` };
  }
  if (next === null) return { problem: "never fires (no such date, e.g. 30 February)" };
  return { next };
}
