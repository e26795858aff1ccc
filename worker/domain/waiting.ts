/**
 * Why a PENDING execution waits (docs/agent-protocol.md, "Waiting"): the dispatcher that holds it
 * finds the reason (it knows the queue, the account's slots, the agents polling it, and asks D1
 * when its agents were last seen) and tells the Execution object when it changes; the object
 * answers it as `waiting_reason` and writes a line to the log. Pure.
 */

export type WaitingReason =
  /** Queued; the dispatcher has not looked yet. */
  | { code: "queued" }
  /** No live agent serves the queue (`account` null: the shared pool). */
  | { code: "no_agent"; account: string | null; location: string | null }
  /** Agents serve it, but none was seen within the online window. */
  | { code: "agent_offline"; account: string | null; location: string | null; lastSeen: number | null }
  /** The account holds all its concurrency slots. */
  | { code: "account_limit"; running: number; limit: number }
  /** Agents are online; `ahead` executions were queued before this one (`more`: more than that, see `queuedBehind`). */
  | { code: "queued_behind"; ahead: number; more?: true };

/**
 * The position as told: exact up to 10, then "more than" the 10/20/50/100/200/500… step below
 * it. A grant moves every execution behind it up by one; with steps it changes the told reason
 * (one call to each object, one index write, one log line) of about ten executions, not of the
 * whole queue.
 */
export function queuedBehind(n: number): WaitingReason {
  if (n <= 10) return { code: "queued_behind", ahead: n };
  let step = 10;
  for (let next = 20; next < n; ) {
    step = next;
    const digits = 10 ** Math.floor(Math.log10(next));
    next = next / digits === 2 ? 5 * digits : next / digits === 5 ? 10 * digits : 2 * digits;
  }
  return { code: "queued_behind", ahead: step, more: true };
}

/** Two reasons are the same (nothing to tell). */
export function sameReason(a: WaitingReason | null | undefined, b: WaitingReason | null | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

function where(account: string | null, location: string | null): string {
  if (account === null) return "the shared pool";
  return `account ${account}, ${location ? `location ${location}` : "default location"}`;
}

/** How long ago, in the largest whole unit ("12 minutes ago"). */
export function ago(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const [n, unit] =
    s < 60 ? [s, "second"] : s < 3600 ? [Math.floor(s / 60), "minute"] : s < 86_400 ? [Math.floor(s / 3600), "hour"] : [Math.floor(s / 86_400), "day"];
  return `${n} ${unit}${n === 1 ? "" : "s"} ago`;
}

/** The reason as a sentence, at `now` (a "last seen" is relative to it). */
export function waitingText(r: WaitingReason, now: number): string {
  switch (r.code) {
    case "queued":
      return "queued, waiting for the dispatcher";
    case "no_agent":
      return `no agent registered for ${where(r.account, r.location)}`;
    case "agent_offline":
      return `no online agent for ${where(r.account, r.location)}${r.lastSeen === null ? " — never seen" : ` — last seen ${ago(now - r.lastSeen)}`}`;
    case "account_limit":
      return `account limit ${r.running} of ${r.limit} running`;
    case "queued_behind":
      if (r.ahead === 0) return "next in line, waiting for a free agent";
      return r.more ? `queued behind more than ${r.ahead}` : `queued behind ${r.ahead}`;
  }
}
