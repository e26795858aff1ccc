import { useState } from "preact/hooks";
import { acct, api, can, enc, type Page } from "../api";
import type { Execution, Job } from "../api-types";
import { Empty, href, html, inputValue, Loading, Pager, ProblemBanner, Status, useLoad } from "../components";
import { ago, formatTime, pool, shortId } from "../util";

export type JobSummary = Pick<Job, "id" | "name" | "description" | "playbook" | "repository" | "hosts" | "useDynamicInventory" | "lastUpdatedTime">;

interface Row {
  job: JobSummary;
  last?: { status: string; created_time: number; execution_id: string } | null;
  next?: number | null;
}

const SIZE = 100;

/** The earliest next run of a job's enabled schedules; undefined when the schedules API is not there. */
export async function nextRunOf(jobId: string, signal?: AbortSignal): Promise<number | null | undefined> {
  const page = await api<Page<{ enabled?: boolean; nextRunTime?: number | null }> | null>(
    "GET",
    `/jobs/${acct()}/${enc(jobId)}/schedules?size=100`,
    undefined,
    { allow404: true, signal },
  );
  if (!page) return undefined;
  const times = page.results.filter((s) => s.enabled !== false && typeof s.nextRunTime === "number").map((s) => s.nextRunTime as number);
  return times.length ? Math.min(...times) : null;
}

export function Jobs() {
  const [page, setPage] = useState(0);
  const [query, setQuery] = useState("");
  const { data, error, loading } = useLoad(
    async (signal) => {
      const jobs = await api<Page<JobSummary>>("GET", `/jobs/${acct()}?page=${page}&size=${SIZE}`, undefined, { signal });
      // Last executions: the account's newest first, then one read per job not in that page.
      const recent = await api<Page<Execution>>("GET", `/jobs/${acct()}/executions?size=100`, undefined, { signal });
      const last = new Map<string, Execution>();
      for (const e of recent.results) if (!last.has(e.job_id)) last.set(e.job_id, e);
      let schedules = true;
      const rows: Row[] = await pool(jobs.results, 4, async (job) => {
        let l = last.get(job.id) ?? null;
        if (!l && recent.totalSize > recent.results.length) {
          l =
            (await api<Page<Execution>>("GET", `/jobs/${acct()}/${enc(job.id)}/executions?size=1`, undefined, { signal }).catch(() => null))?.results[0] ??
            null;
        }
        // The schedules API may not exist on this server: the first 404 stops the asking.
        const next = schedules ? await nextRunOf(job.id, signal).catch(() => undefined) : undefined;
        if (next === undefined) schedules = false;
        return { job, last: l, next };
      });
      return { jobs, rows, schedules };
    },
    [page],
  );

  const q = query.trim().toLowerCase();
  const rows = (data?.rows ?? []).filter(
    (r) => !q || [r.job.name, r.job.description, r.job.id, r.job.repository?.url].some((v) => v?.toLowerCase().includes(q)),
  );

  return html`<section>
    <div class="page-head">
      <h1 tabindex="-1">Jobs</h1>
      ${can("user") ? html`<a class="button primary" href="#/jobs/new">New job</a>` : null}
    </div>
    <div class="toolbar">
      <label for="job-search" class="visually-hidden">Search jobs</label>
      <input id="job-search" type="search" placeholder="Search by name, description, id or repository" value=${query} onInput=${(e: Event) => setQuery(inputValue(e))} />
    </div>
    <${ProblemBanner} error=${error} />
    ${
      loading && !data
        ? html`<${Loading} what="Loading jobs" />`
        : data && data.jobs.totalSize === 0
          ? html`<${Empty}>No jobs yet — ${can("user") ? html`<a href="#/jobs/new">create one</a>` : "a user or admin can create one"}.<//>`
          : data && rows.length === 0
            ? html`<${Empty}>No job matches “${query}”.<//>`
            : data
              ? html`<div class="table-wrap"><table class="list" aria-label="Jobs">
                <thead><tr><th scope="col">Name</th><th scope="col">Playbook</th><th scope="col">Hosts</th><th scope="col">Last execution</th>${data.schedules ? html`<th scope="col">Next run</th>` : null}<th scope="col">Updated</th></tr></thead>
                <tbody>
                  ${rows.map(
                    (r) => html`<tr key=${r.job.id}>
                      <td><a href=${href("jobs", r.job.id)} class="strong">${r.job.name || shortId(r.job.id)}</a>${r.job.description ? html`<div class="muted small clip">${r.job.description}</div>` : null}</td>
                      <td class="small">${r.job.repository ? html`<span class="clip">${r.job.repository.url}</span>` : "inline"}</td>
                      <td>${r.job.useDynamicInventory ? "inventory" : r.job.hosts.length}</td>
                      <td>${r.last ? html`<a href=${href("jobs", r.job.id, "executions", r.last.execution_id)}><${Status} status=${r.last.status} /></a> <span class="muted small">${ago(r.last.created_time)}</span>` : html`<span class="muted">never run</span>`}</td>
                      ${data.schedules ? html`<td class="small">${r.next ? html`<span title=${formatTime(r.next)}>${ago(r.next)}</span>` : html`<span class="muted">—</span>`}</td>` : null}
                      <td class="small muted">${ago(r.job.lastUpdatedTime)}</td>
                    </tr>`,
                  )}
                </tbody>
              </table></div>
              <${Pager} page=${data.jobs.page} size=${data.jobs.size} totalSize=${data.jobs.totalSize} onPage=${setPage} />`
              : null
    }
  </section>`;
}
