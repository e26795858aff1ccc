import { useEffect, useRef, useState } from "preact/hooks";
import { acct, api, can, enc, followLog, type Page } from "../api";
import { AnsiAppender } from "../ansi";
import type { DeliveryPage, Execution as ExecutionAnswer, HostStats, Job, StatusEvent } from "../api-types";
import { Empty, href, html, inputValue, Loading, ProblemBanner, Status, useInterval, useLoad, useNow } from "../components";
import { ago, canKill, canRestart, canStop, duration, formatTime, isTerminal, runTime, shortId } from "../util";

/** An execution as answered; `waiting_reason` is shown when the API says why a PENDING one waits (it does not yet). */
type Exec = ExecutionAnswer & { waiting_reason?: string | null };

export function Execution({ jobId, executionId }: { jobId: string; executionId: string }) {
  const path = `/jobs/${acct()}/${enc(jobId)}/executions/${enc(executionId)}`;
  const x = useLoad((signal) => api<Exec>("GET", path, undefined, { signal }), [path]);
  const job = useLoad((signal) => api<Job>("GET", `/jobs/${acct()}/${enc(jobId)}`, undefined, { signal }).catch(() => null), [jobId]);
  const e = x.data;
  const live = !!e && !isTerminal(e.status);
  useInterval(x.reload, 1500, live);
  const now = useNow(live);

  if (x.error && !e) return html`<${ProblemBanner} error=${x.error} />`;
  if (!e) return html`<${Loading} what="Loading the execution" />`;

  /** An action's answer shows at once; the reload that follows brings what changed since. */
  const onAction = (answer: Exec) => {
    x.set(answer);
    x.reload();
  };
  const started = e.timers[0]?.start ?? null;
  const ended = isTerminal(e.status) ? (e.timers.at(-1)?.end ?? null) : null;
  return html`<section class="execution">
    <nav class="crumbs" aria-label="Breadcrumb"><a href="#/jobs">Jobs</a> › <a href=${href("jobs", jobId)}>${job.data?.name || shortId(jobId)}</a> ›</nav>
    <div class="page-head">
      <h1 tabindex="-1">Execution <span class="mono">${shortId(e.execution_id)}</span></h1>
      <span class="status-big" aria-live="polite" data-testid="execution-status"><${Status} status=${e.status} /></span>
    </div>
    <dl class="facts">
      <div><dt>Created</dt><dd title=${formatTime(e.created_time)}>${ago(e.created_time, now)}</dd></div>
      <div><dt>Started</dt><dd>${started ? formatTime(started) : "not yet"}</dd></div>
      <div><dt>${ended ? "Ended" : "Running for"}</dt><dd data-testid="elapsed">${ended ? formatTime(ended) : started ? duration(now - (e.timers.at(-1)?.start ?? started)) : "—"}</dd></div>
      <div><dt>Run time</dt><dd>${duration(runTime(e.timers, now))}</dd></div>
      <div><dt>Trigger</dt><dd>${e.trigger}${e.attempt > 1 ? ` · attempt ${e.attempt}` : ""}</dd></div>
      ${e.reason ? html`<div><dt>Reason</dt><dd>${e.reason}</dd></div>` : null}
      ${e.waiting_reason && e.status === "PENDING" ? html`<div><dt>Waiting</dt><dd>${e.waiting_reason}</dd></div>` : null}
      <div><dt>Agent</dt><dd class="mono">${e.agent_id ? shortId(e.agent_id) : "—"}</dd></div>
      ${e.repository_log ? html`<div><dt>Commit</dt><dd><span class="mono">${e.repository_log.commit.slice(0, 10)}</span> ${e.repository_log.message ? html`<span class="small">${e.repository_log.message.split("\n")[0]}</span>` : null}</dd></div>` : null}
    </dl>
    ${
      e.timers.length > 1
        ? html`<details><summary>Runs (${e.timers.length})</summary><ol>${e.timers.map((t) => html`<li>${formatTime(t.start)} → ${t.end ? formatTime(t.end) : "running"} (${duration((t.end ?? now) - t.start)})</li>`)}</ol></details>`
        : null
    }
    ${can("user") ? html`<${Actions} path=${path} exec=${e} onDone=${onAction} />` : null}
    <${Log} key=${`${e.execution_id}:${e.attempt}`} path=${`${path}/log`} onEnd=${x.reload} />
    <div class="grid2">
      <${Hosts} exec=${e} />
      <${Tasks} path=${path} live=${live} status=${e.status} endTime=${ended} />
    </div>
    <${Deliveries} path=${path} live=${live} />
  </section>`;
}

function Actions({ path, exec, onDone }: { path: string; exec: Exec; onDone: (answer: Exec) => void }) {
  const [expiry, setExpiry] = useState("30");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const act = async (what: string, body?: unknown) => {
    if (what === "kill" && !confirm("Kill this execution now? Its processes are killed at once, mid-task.")) return;
    setError(null);
    setBusy(what);
    try {
      onDone(await api<Exec>("POST", `${path}/${what}`, body));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  const s = exec.status;
  return html`<div class="card exec-actions">
    <form class="inline" onSubmit=${(e: Event) => {
      e.preventDefault();
      act("stop", { expiryDuration: Number(expiry) || 0 });
    }}>
      <button type="submit" disabled=${!canStop(s) || !!busy} data-testid="stop">${busy === "stop" ? "Stopping…" : "Stop"}</button>
      <label for="stop-expiry">then kill after</label>
      <input id="stop-expiry" class="narrow" inputmode="numeric" value=${expiry} onInput=${(e: Event) => setExpiry(inputValue(e))} aria-describedby="stop-expiry-hint" />
      <span id="stop-expiry-hint" class="small muted">seconds (0: never)</span>
    </form>
    <button type="button" class="danger" disabled=${!canKill(s) || !!busy} onClick=${() => act("kill")} data-testid="kill">${busy === "kill" ? "Killing…" : "Kill"}</button>
    <button type="button" disabled=${!canRestart(s) || !!busy} onClick=${() => act("restart")} data-testid="restart" title="Run again on the failed hosts only">${busy === "restart" ? "Restarting…" : "Restart failed hosts"}</button>
    <${ProblemBanner} error=${error} />
  </div>`;
}

/** The live log: SSE into a <pre>, ANSI colours as classes, auto-scroll that pauses when the reader scrolls up. */
function Log({ path, onEnd }: { path: string; onEnd: () => void }) {
  const box = useRef<HTMLDivElement>(null);
  const pre = useRef<HTMLPreElement>(null);
  const follow = useRef(true);
  const [following, setFollowing] = useState(true);
  const [state, setState] = useState<"connecting" | "live" | "ended" | "retrying">("connecting");
  const [empty, setEmpty] = useState(true);
  useEffect(() => {
    const out = new AnsiAppender(pre.current!);
    const stop = followLog(path, {
      text(t) {
        // Whether the reader is at the end is read from the box itself, before the text goes in: a
        // scroll up that its scroll event has not yet reported still pauses the auto-scroll.
        const b = box.current!;
        const atEnd = b.scrollHeight - b.scrollTop - b.clientHeight < 24;
        out.append(t);
        setEmpty(false);
        setState("live");
        if (follow.current && atEnd) b.scrollTop = b.scrollHeight;
        else if (follow.current) {
          follow.current = false;
          setFollowing(false);
        }
      },
      end() {
        setState("ended");
        onEnd();
      },
      error() {
        setState("retrying");
      },
    });
    return stop;
  }, [path]);
  const onScroll = () => {
    const b = box.current!;
    const atEnd = b.scrollHeight - b.scrollTop - b.clientHeight < 24;
    if (atEnd !== follow.current) {
      follow.current = atEnd;
      setFollowing(atEnd);
    }
  };
  const jump = () => {
    follow.current = true;
    setFollowing(true);
    box.current!.scrollTop = box.current!.scrollHeight;
  };
  return html`<section class="log-panel" aria-labelledby="log-h">
    <div class="panel-head">
      <h2 id="log-h">Log</h2>
      <span class="small muted" data-testid="log-state">${state === "live" ? "live" : state === "ended" ? "complete" : state === "retrying" ? "reconnecting…" : "connecting…"}</span>
      ${!following ? html`<button type="button" class="small" onClick=${jump} data-testid="log-resume">Auto-scroll paused — jump to the end</button>` : null}
    </div>
    <div class="log" ref=${box} onScroll=${onScroll} tabindex="0" role="log" aria-label="Execution log" aria-live="off" data-testid="log">
      <pre ref=${pre}></pre>
      ${empty && state !== "ended" ? html`<p class="muted">Waiting for output…</p>` : null}
      ${empty && state === "ended" ? html`<p class="muted">No output.</p>` : null}
    </div>
  </section>`;
}

function Hosts({ exec }: { exec: Exec }) {
  const hosts = Object.entries(exec.host_stats ?? {});
  const cols: (keyof HostStats)[] = ["ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored"];
  return html`<section class="card" aria-labelledby="hosts-h">
    <h2 id="hosts-h">Hosts</h2>
    ${exec.failed_hosts.length ? html`<p class="bad" data-testid="failed-hosts">Failed: ${exec.failed_hosts.join(", ")}</p>` : null}
    ${
      hosts.length === 0
        ? html`<${Empty}>${isTerminal(exec.status) ? "No host results." : "Host results appear when the play recap is in."}<//>`
        : html`<div class="table-wrap"><table class="list num" aria-label="Per-host results" data-testid="host-table">
          <thead><tr><th scope="col">Host</th>${cols.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
          <tbody>${hosts.map(
            ([h, s]) => html`<tr key=${h} class=${exec.failed_hosts.includes(h) ? "row-bad" : ""}>
              <th scope="row" class="mono">${h}</th>
              ${cols.map((c) => html`<td class=${(s[c] ?? 0) > 0 ? `n-${c}` : "muted"}>${s[c] ?? 0}</td>`)}
            </tr>`,
          )}</tbody>
        </table></div>`
    }
  </section>`;
}

interface Task {
  name: string;
  start: number;
  end: number | null;
  ok: number;
  changed: number;
  failed: number;
  unreachable: number;
  skipped: number;
}

/** What the task table reads of an event's data (the Ansible callback's payload). */
interface TaskEventData {
  changed?: unknown;
  result?: { changed?: unknown } | null;
  ignore_errors?: unknown;
}

const TASK_START = new Set(["playbook_on_task_start", "playbook_on_handler_task_start", "playbook_on_cleanup_task_start"]);

function Tasks({ path, live, status, endTime }: { path: string; live: boolean; status: string; endTime: number | null }) {
  const [tasks, setTasks] = useState<Task[]>([]);
  const [error, setError] = useState<unknown>(null);
  const after = useRef(0);
  const acc = useRef<Task[]>([]);
  const busy = useRef(false);
  const again = useRef(false);
  const pull = async (): Promise<void> => {
    // One pull at a time; one asked for meanwhile runs right after (the last one after the end counts).
    if (busy.current) {
      again.current = true;
      return;
    }
    busy.current = true;
    try {
      for (;;) {
        const page = await api<Page<StatusEvent>>("GET", `${path}/events?after=${after.current}&size=100`);
        for (const ev of page.results) {
          after.current = Math.max(after.current, ev.sequence);
          const list = acc.current;
          const cur = list.at(-1);
          if (TASK_START.has(ev.event_type)) {
            if (cur && cur.end === null) cur.end = ev.timestamp;
            list.push({ name: ev.task || "(unnamed task)", start: ev.timestamp, end: null, ok: 0, changed: 0, failed: 0, unreachable: 0, skipped: 0 });
          } else if (cur && ev.host) {
            const t = ev.event_type as string;
            const data = ev.data as TaskEventData | null | undefined;
            if (t === "runner_on_ok") {
              if (data?.changed === true || data?.result?.changed === true || /^changed:/.test(ev.message ?? "")) cur.changed++;
              else cur.ok++;
            } else if (t === "runner_on_failed" && !data?.ignore_errors) cur.failed++;
            else if (t === "runner_on_unreachable") cur.unreachable++;
            else if (t === "runner_on_skipped") cur.skipped++;
          }
          if (ev.event_type === "playbook_on_stats" && cur && cur.end === null) cur.end = ev.timestamp;
        }
        if (page.results.length < 100) break;
      }
      setTasks([...acc.current]);
    } catch (e) {
      setError(e);
    } finally {
      busy.current = false;
    }
    if (again.current) {
      again.current = false;
      return pull();
    }
  };
  useEffect(() => {
    void pull();
  }, [path]);
  useInterval(pull, 2000, live);
  useEffect(() => {
    if (!live) void pull();
  }, [live]);
  const now = useNow(live);
  return html`<section class="card" aria-labelledby="tasks-h">
    <h2 id="tasks-h">Tasks</h2>
    <${ProblemBanner} error=${error} />
    ${
      tasks.length === 0
        ? html`<${Empty}>${isTerminal(status) ? "No tasks ran." : "No task has started yet."}<//>`
        : html`<div class="table-wrap"><table class="list" aria-label="Tasks" data-testid="task-table">
          <thead><tr><th scope="col">Task</th><th scope="col">Duration</th><th scope="col">Results</th></tr></thead>
          <tbody>${tasks.map((t, i) => {
            const end = t.end ?? endTime ?? (live ? now : null);
            return html`<tr key=${i} class=${t.failed || t.unreachable ? "row-bad" : ""}>
              <td>${t.name}</td>
              <td>${end ? duration(end - t.start) : "—"}${t.end === null && live ? html` <span class="tag">running</span>` : null}</td>
              <td class="small">${[t.ok && `${t.ok} ok`, t.changed && `${t.changed} changed`, t.failed && `${t.failed} failed`, t.unreachable && `${t.unreachable} unreachable`, t.skipped && `${t.skipped} skipped`].filter(Boolean).join(", ") || "—"}</td>
            </tr>`;
          })}</tbody>
        </table></div>`
    }
  </section>`;
}

/**
 * A webhook delivery, as the panel reads it: the deliveries API is not built yet (the panel hides
 * on its 404), so the names it may answer are read in either spelling.
 */

function Deliveries({ path, live }: { path: string; live: boolean }) {
  const list = useLoad((signal) => api<DeliveryPage | null>("GET", `${path}/deliveries?size=100`, undefined, { signal, allow404: true }), [path]);
  useInterval(list.reload, 5000, live && list.data !== null);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  // Where the deliveries API is not built (404), the panel is not there.
  if (list.data === null) return null;
  const redeliver = async (id: string | undefined) => {
    setError(null);
    setDone(null);
    try {
      await api("POST", `${path}/deliveries/${enc(String(id))}/redeliver`);
      setDone("Queued for delivery again.");
      list.reload();
    } catch (e) {
      setError(e);
    }
  };
  const rows = list.data?.results ?? [];
  return html`<section class="card" aria-labelledby="deliv-h" data-testid="deliveries">
    <h2 id="deliv-h">Webhook deliveries</h2>
    <${ProblemBanner} error=${error ?? list.error} />
    ${done ? html`<p role="status" class="notice">${done}</p>` : null}
    ${
      !list.data
        ? html`<${Loading} />`
        : rows.length === 0
          ? html`<${Empty}>No deliveries for this execution (its job has no callbacks, or none were due yet).<//>`
          : html`<div class="table-wrap"><table class="list" aria-label="Webhook deliveries">
            <thead><tr><th scope="col">Event</th><th scope="col">URL</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Last answer</th><th scope="col">When</th>${can("user") ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : null}</tr></thead>
            <tbody>${rows.map((d) => {
              const id = d.delivery_id;
              const code = d.last_response_code;
              return html`<tr key=${id}>
                <td>${d.event_type} <span class="muted small">#${d.sequence}</span></td>
                <td class="mono small clip">${d.url}</td>
                <td><span class=${`tag d-${d.status}`}>${d.status}</span></td>
                <td>${d.attempts}</td>
                <td>${code ?? "—"}${d.last_error ? html` <span class="small bad">${d.last_error}</span>` : null}</td>
                <td class="small">${ago(d.updated_time)}</td>
                ${can("user") ? html`<td><button type="button" class="small" onClick=${() => redeliver(id)}>Redeliver</button></td>` : null}
              </tr>`;
            })}</tbody>
          </table></div>`
    }
  </section>`;
}
