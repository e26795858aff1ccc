import { useState } from "preact/hooks";
import { acct, api, ApiError, can, enc, type Page } from "../api";
import type { Execution, Job as JobAnswer, Schedule } from "../api-types";
import { Empty, Field, href, html, inputChecked, inputValue, Loading, navigate, Pager, ProblemBanner, Status, useInterval, useLoad } from "../components";
import { ago, duration, formatTime, fromBase64, isTerminal, parseJsonObject, pretty, runTime, shortId, splitList } from "../util";

export function Job({ jobId }: { jobId: string }) {
  const job = useLoad((signal) => api<JobAnswer>("GET", `/jobs/${acct()}/${enc(jobId)}`, undefined, { signal }), [jobId]);
  const [deleteError, setDeleteError] = useState<unknown>(null);
  const j = job.data;
  if (job.error && !j) return html`<${ProblemBanner} error=${job.error} />`;
  if (!j) return html`<${Loading} what="Loading the job" />`;

  const remove = async () => {
    if (!confirm(`Delete the job "${j.name || j.id}" and its schedules? Its executions stay readable.`)) return;
    try {
      await api("DELETE", `/jobs/${acct()}/${enc(jobId)}`);
      navigate("jobs");
    } catch (e) {
      setDeleteError(e);
    }
  };

  const playbook = j.playbook ? fromBase64(j.playbook) : null;
  return html`<section>
    <nav class="crumbs" aria-label="Breadcrumb"><a href="#/jobs">Jobs</a> ›</nav>
    <div class="page-head">
      <h1 tabindex="-1" data-testid="job-name">${j.name || shortId(j.id)}</h1>
      ${
        can("user")
          ? html`<div class="actions">
            <a class="button" href=${href("jobs", jobId, "edit")}>Edit</a>
            <button type="button" class="danger" onClick=${remove}>Delete</button>
          </div>`
          : null
      }
    </div>
    <${ProblemBanner} error=${deleteError} />
    ${j.description ? html`<p class="description" data-testid="job-description">${j.description}</p>` : null}
    ${can("user") ? html`<${StartPanel} job=${j} />` : null}
    <div class="grid2">
      <section class="card" aria-labelledby="def-h">
        <h2 id="def-h">Definition</h2>
        <dl class="props">
          <dt>Id</dt><dd class="mono">${j.id}</dd>
          <dt>Playbook</dt>
          <dd>${
            j.repository
              ? html`<span class="mono">${j.repository.url}</span> · ${j.repository.branch ?? "default branch"} · <span class="mono">${j.repository.defaultPlaybook}</span>
                ${j.repository.credentials ? html`<div class="small">credentials: ${j.repository.credentials.username ?? "no username"}, password ${j.repository.credentials.hasPassword ? "set" : "not set"}, SSH key ${j.repository.credentials.hasSshPrivateKey ? "set" : "not set"}</div>` : null}`
              : "inline"
          }</dd>
          <dt>Hosts</dt>
          <dd>${
            j.useDynamicInventory
              ? html`the account's <a href="#/inventory">inventory</a>`
              : html`<ul class="plain">${j.hosts.map((h) => html`<li><span class="mono">${h.id}</span>${Object.keys(h.hostVars).length ? html` <span class="muted small mono">${JSON.stringify(h.hostVars)}</span>` : null}${h.hasSshPrivateKey ? html` <span class="tag">key set</span>` : null}</li>`)}</ul>`
          }</dd>
          <dt>Default SSH key</dt><dd>${j.hasSshPrivateKey ? "set" : "not set"}</dd>
          <dt>Location</dt><dd>${j.location ?? "default"}</dd>
          <dt>Tags</dt><dd>${j.playbookTags.length ? j.playbookTags.join(", ") : html`<span class="muted">all tasks</span>`}</dd>
          <dt>Properties</dt><dd>${Object.keys(j.properties).length ? html`<pre class="mono small">${pretty(j.properties)}</pre>` : html`<span class="muted">none</span>`}</dd>
          <dt>Time to live</dt><dd>${j.executionTtl} min</dd>
          <dt>Callbacks</dt><dd>${j.callbacks.length ? html`<ul class="plain">${j.callbacks.map((c) => html`<li><span class="mono">${c.url}</span> <span class="tag">${c.level}</span></li>`)}</ul>` : html`<span class="muted">none</span>`}</dd>
          <dt>Updated</dt><dd>${formatTime(j.lastUpdatedTime)}</dd>
        </dl>
        ${playbook !== null ? html`<details><summary>Playbook</summary><pre class="mono code">${playbook}</pre></details>` : null}
      </section>
      <${Schedules} jobId=${jobId} />
    </div>
    <${JobExecutions} jobId=${jobId} />
  </section>`;
}

function StartPanel({ job }: { job: JobAnswer }) {
  const [open, setOpen] = useState(false);
  const [props, setProps] = useState("");
  const [tags, setTags] = useState("");
  const [check, setCheck] = useState(false);
  const [diff, setDiff] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const start = async (e?: Event) => {
    e?.preventDefault();
    setError(null);
    const body: Record<string, unknown> = {};
    try {
      const p = parseJsonObject(props, "Properties");
      if (p) body.properties = p;
    } catch (err) {
      return setError(
        new ApiError(400, { title: "Check the form", detail: (err as Error).message, errors: [{ field: "properties", message: (err as Error).message }] }),
      );
    }
    if (tags.trim()) body.playbookTags = splitList(tags);
    if (check) body.check = true;
    if (diff) body.diff = true;
    setBusy(true);
    try {
      const x = await api<Execution>("POST", `/jobs/${acct()}/${enc(job.id)}/start`, Object.keys(body).length ? body : undefined);
      navigate("jobs", job.id, "executions", x.execution_id);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="start card">
    <div class="actions">
      <button type="button" class="primary" onClick=${() => start()} disabled=${busy} data-testid="start">${busy ? "Starting…" : "Start"}</button>
      <button type="button" aria-expanded=${open} aria-controls="start-options" onClick=${() => setOpen(!open)}>${open ? "Hide options" : "Start with options…"}</button>
    </div>
    <${ProblemBanner} error=${error} fields=${open ? ["properties", "playbookTags"] : []} />
    ${
      open
        ? html`<form id="start-options" onSubmit=${start}>
          <${Field} label="Properties for this run (JSON, merged over the job's)" id="start-properties" error=${error} field="properties">
            <textarea id="start-properties" rows="3" class="mono" spellcheck="false" value=${props} onInput=${(e: Event) => setProps(inputValue(e))} placeholder=${Object.keys(job.properties).length ? pretty(job.properties) : '{"version": "1.2.3"}'}></textarea>
          <//>
          <${Field} label="Tags for this run" id="start-tags" error=${error} field="playbookTags" hint="Comma-separated; empty: the job's tags.">
            <input id="start-tags" value=${tags} onInput=${(e: Event) => setTags(inputValue(e))} />
          <//>
          <label class="check"><input type="checkbox" checked=${check} onChange=${(e: Event) => setCheck(inputChecked(e))} /> Check mode (dry run)</label>
          <label class="check"><input type="checkbox" checked=${diff} onChange=${(e: Event) => setDiff(inputChecked(e))} /> Show diffs</label>
          <button type="submit" class="primary" disabled=${busy}>Start with these options</button>
        </form>`
        : null
    }
  </div>`;
}

function Schedules({ jobId }: { jobId: string }) {
  const list = useLoad(
    (signal) => api<Page<Schedule> | null>("GET", `/jobs/${acct()}/${enc(jobId)}/schedules?size=100`, undefined, { signal, allow404: true }),
    [jobId],
  );
  const [error, setError] = useState<unknown>(null);
  const [adding, setAdding] = useState(false);
  const [form, setForm] = useState({ description: "", type: "cron", expression: "0 * * * *", timezone: "UTC", serviceAccountAlias: "", enabled: true });
  // The schedules API answers 404 where it is not built: the panel is simply not there.
  if (list.data === null) return null;
  const base = `/jobs/${acct()}/${enc(jobId)}/schedules`;
  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try {
      await fn();
      list.reload();
      return true;
    } catch (e) {
      setError(e);
      return false;
    }
  };
  const add = async (e: Event) => {
    e.preventDefault();
    const ok = await act(() =>
      api("POST", base, {
        description: form.description,
        serviceAccountAlias: form.serviceAccountAlias,
        trigger: { type: form.type, expression: form.expression },
        timezone: form.timezone || undefined,
        enabled: form.enabled,
      }),
    );
    if (ok) setAdding(false);
  };
  const toggle = (s: Schedule) => {
    const { description, serviceAccountAlias, trigger, timezone } = s;
    return act(() => api("PUT", `${base}/${enc(s.id ?? s.scheduleId)}`, { description, serviceAccountAlias, trigger, timezone, enabled: !s.enabled }));
  };
  const remove = (s: Schedule) => confirm(`Delete the schedule "${s.description}"?`) && act(() => api("DELETE", `${base}/${enc(s.id ?? s.scheduleId)}`));
  const schedules = list.data?.results ?? [];
  return html`<section class="card" aria-labelledby="sched-h" data-testid="schedules">
    <h2 id="sched-h">Schedules</h2>
    <${ProblemBanner} error=${error ?? list.error} fields=${adding ? ["description", "serviceAccountAlias", "trigger", "timezone", "enabled"] : []} />
    ${
      !list.data
        ? html`<${Loading} />`
        : schedules.length === 0
          ? html`<${Empty}>No schedules${can("user") ? " — add one to run this job on a cron or at a date" : ""}.<//>`
          : html`<ul class="plain schedules">${schedules.map(
              (s) => html`<li key=${s.id}>
              <div><strong>${s.description}</strong> <span class="tag">${s.enabled ? "enabled" : "disabled"}</span></div>
              <div class="small mono">${s.trigger?.type}: ${s.trigger?.expression} (${s.timezone ?? "UTC"}) · as ${s.serviceAccountAlias}</div>
              <div class="small">next run: ${s.enabled && s.nextRunTime ? html`<span title=${formatTime(s.nextRunTime)}>${formatTime(s.nextRunTime)} (${ago(s.nextRunTime)})</span>` : "—"} · last: ${s.lastRunTime ? ago(s.lastRunTime) : "never"}${s.lastError ? html` · <span class="bad">${s.lastError}</span>` : null}</div>
              ${
                can("user")
                  ? html`<div class="actions"><button type="button" class="small" onClick=${() => toggle(s)}>${s.enabled ? "Disable" : "Enable"}</button><button type="button" class="small danger" onClick=${() => remove(s)}>Delete</button></div>`
                  : null
              }
            </li>`,
            )}</ul>`
    }
    ${can("user") && !adding ? html`<button type="button" class="small" onClick=${() => setAdding(true)}>Add a schedule</button>` : null}
    ${
      adding
        ? html`<form onSubmit=${add} class="sched-form">
          <${Field} label="Description" id="sched-desc" error=${error} field="description">
            <input id="sched-desc" required value=${form.description} onInput=${(e: Event) => setForm({ ...form, description: inputValue(e) })} />
          <//>
          <div class="row2">
            <${Field} label="Trigger" id="sched-type" error=${error} field="trigger.type">
              <select id="sched-type" value=${form.type} onChange=${(e: Event) => setForm({ ...form, type: inputValue(e) })}>
                <option value="cron">cron (5 fields)</option>
                <option value="date">date (one ISO-8601 instant)</option>
              </select>
            <//>
            <${Field} label="Expression" id="sched-expr" error=${error} field="trigger.expression" hint=${form.type === "cron" ? "e.g. 0 3 * * 1-5 or @hourly" : "e.g. 2030-01-01T09:00:00Z"}>
              <input id="sched-expr" class="mono" value=${form.expression} onInput=${(e: Event) => setForm({ ...form, expression: inputValue(e) })} />
            <//>
          </div>
          <div class="row2">
            <${Field} label="Timezone" id="sched-tz" error=${error} field="timezone" hint="An IANA name; default UTC.">
              <input id="sched-tz" value=${form.timezone} onInput=${(e: Event) => setForm({ ...form, timezone: inputValue(e) })} />
            <//>
            <${Field} label="Runs as service account" id="sched-sa" error=${error} field="serviceAccountAlias" hint="The alias of a service account of this account.">
              <input id="sched-sa" required value=${form.serviceAccountAlias} onInput=${(e: Event) => setForm({ ...form, serviceAccountAlias: inputValue(e) })} />
            <//>
          </div>
          <label class="check"><input type="checkbox" checked=${form.enabled} onChange=${(e: Event) => setForm({ ...form, enabled: inputChecked(e) })} /> Enabled</label>
          <div class="actions"><button type="submit" class="primary">Add schedule</button><button type="button" onClick=${() => setAdding(false)}>Cancel</button></div>
        </form>`
        : null
    }
  </section>`;
}

export function ExecutionRows({ rows, showJob = false }: { rows: Execution[]; showJob?: boolean }) {
  const now = Date.now();
  return html`<div class="table-wrap"><table class="list" aria-label="Executions">
    <thead><tr><th scope="col">Status</th><th scope="col">Execution</th>${showJob ? html`<th scope="col">Job</th>` : null}<th scope="col">Trigger</th><th scope="col">Created</th><th scope="col">Run time</th><th scope="col">Failed hosts</th></tr></thead>
    <tbody>${rows.map(
      (x) => html`<tr key=${x.execution_id}>
        <td><${Status} status=${x.status} /></td>
        <td><a class="mono" href=${href("jobs", x.job_id, "executions", x.execution_id)}>${shortId(x.execution_id)}</a></td>
        ${showJob ? html`<td><a class="mono" href=${href("jobs", x.job_id)}>${shortId(x.job_id)}</a></td>` : null}
        <td>${x.trigger}</td>
        <td class="small" title=${formatTime(x.created_time)}>${ago(x.created_time, now)}</td>
        <td>${duration(runTime(x.timers, now))}</td>
        <td>${x.failed_hosts.length ? html`<span class="bad">${x.failed_hosts.join(", ")}</span>` : html`<span class="muted">—</span>`}</td>
      </tr>`,
    )}</tbody>
  </table></div>`;
}

function JobExecutions({ jobId }: { jobId: string }) {
  const [page, setPage] = useState(0);
  const list = useLoad(
    (signal) => api<Page<Execution>>("GET", `/jobs/${acct()}/${enc(jobId)}/executions?page=${page}&size=20`, undefined, { signal }),
    [jobId, page],
  );
  const active = (list.data?.results ?? []).some((x) => !isTerminal(x.status));
  useInterval(list.reload, 3000, active);
  return html`<section aria-labelledby="exec-h">
    <h2 id="exec-h">Executions</h2>
    <${ProblemBanner} error=${list.error} />
    ${
      !list.data
        ? html`<${Loading} />`
        : list.data.totalSize === 0
          ? html`<${Empty}>Not run yet${can("user") ? " — press Start" : ""}.<//>`
          : html`<${ExecutionRows} rows=${list.data.results} /><${Pager} ...${list.data} onPage=${setPage} />`
    }
  </section>`;
}
