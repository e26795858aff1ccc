import { useState } from "preact/hooks";
import { acct, api, type Page } from "../api";
import { Empty, href, html, Loading, Pager, ProblemBanner, useLoad } from "../components";
import { ago, formatTime, shortId } from "../util";

/** One entry of GET /audit/{alias} (worker/schemas/audit.ts). */
export interface AuditEntry {
  id: string;
  time: number;
  action: string;
  subject: string;
  subjectKind: string;
  resourceType: string;
  resourceId: string | null;
  ip: string | null;
  requestId: string | null;
  details: Record<string, unknown>;
}

const TYPES = ["job", "execution", "schedule", "serviceAccount", "registrationToken", "agent", "inventory", "webhook"];
const KIND_LABEL: Record<string, string> = {
  user: "user token",
  serviceAccount: "service account",
  operator: "operator",
  agent: "agent",
  schedule: "schedule",
  anonymous: "unknown",
};
const SIZE = 50;

/** The resource, linked where the dashboard has a page for it. Ids are text, encoded into the link. */
function Resource({ e }: { e: AuditEntry }) {
  const id = e.resourceId;
  const jobId = typeof e.details.jobId === "string" ? e.details.jobId : null;
  const label = html`<span class="muted">${e.resourceType}</span> ${id ? html`<span class="mono" title=${id}>${shortId(id)}</span>` : null}`;
  if (e.resourceType === "job" && id && e.action !== "job.deleted") return html`<a href=${href("jobs", id)}>${label}</a>`;
  if (e.resourceType === "execution" && id && jobId) return html`<a href=${href("jobs", jobId, "executions", id)}>${label}</a>`;
  return label;
}

/** The details as `key: value` text (they are small and never secret). */
function Details({ details }: { details: Record<string, unknown> }) {
  const entries = Object.entries(details).filter(([, v]) => v !== null && !(Array.isArray(v) && v.length === 0));
  if (!entries.length) return html`<span class="muted">—</span>`;
  return html`<ul class="plain small">${entries.map(([k, v]) => html`<li key=${k}><span class="muted">${k}</span> ${Array.isArray(v) ? v.join(", ") : String(v)}</li>`)}</ul>`;
}

/** The account's audit log (admins): who changed what, newest first, by resource type or one resource. */
export function Audit() {
  const [page, setPage] = useState(0);
  const [type, setType] = useState("");
  const [id, setId] = useState("");
  const [applied, setApplied] = useState("");
  const list = useLoad(
    (signal) =>
      api<Page<AuditEntry>>("GET", `/audit/${acct()}?page=${page}&size=${SIZE}${applied ? `&resource=${encodeURIComponent(applied)}` : ""}`, undefined, {
        signal,
      }),
    [page, applied],
  );
  const apply = (t: string, i: string) => {
    setApplied(t ? (i.trim() ? `${t}/${i.trim()}` : t) : "");
    setPage(0);
  };
  return html`<section>
    <div class="page-head"><h1 tabindex="-1">Audit</h1></div>
    <p class="muted small">Every change in this account: who made it, to what, when and from where. Kept 90 days.</p>
    <form
      class="toolbar"
      onSubmit=${(e: Event) => {
        e.preventDefault();
        apply(type, id);
      }}
      data-testid="audit-filter"
    >
      <label for="audit-type">Resource</label>
      <select id="audit-type" value=${type} onChange=${(e: Event) => {
        const t = (e.currentTarget as HTMLSelectElement).value;
        setType(t);
        apply(t, id);
      }}>
        <option value="">any</option>
        ${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}
      </select>
      <label for="audit-id" class="visually-hidden">Resource id</label>
      <input id="audit-id" type="search" placeholder="Resource id (optional)" value=${id} disabled=${!type} onInput=${(e: Event) => setId((e.currentTarget as HTMLInputElement).value)} />
      <button type="submit" class="small" disabled=${!type}>Filter</button>
    </form>
    <${ProblemBanner} error=${list.error} fields=${["resource"]} />
    ${
      !list.data
        ? html`<${Loading} what="Loading the audit log" />`
        : list.data.totalSize === 0
          ? html`<${Empty}>${applied ? `Nothing recorded about ${applied}.` : "Nothing recorded yet."}<//>`
          : html`<div class="table-wrap"><table class="list" aria-label="Audit log" data-testid="audit-table">
              <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Resource</th><th scope="col">From</th><th scope="col">Details</th></tr></thead>
              <tbody>${list.data.results.map(
                (e) => html`<tr key=${e.id} data-action=${e.action}>
                  <td class="small" title=${formatTime(e.time)}>${ago(e.time)}</td>
                  <td><span class="mono small" title=${e.subject}>${e.subject}</span><div class="muted small">${KIND_LABEL[e.subjectKind] ?? e.subjectKind}</div></td>
                  <td><code>${e.action}</code></td>
                  <td><${Resource} e=${e} /></td>
                  <td class="small">${e.ip ?? html`<span class="muted">—</span>`}${e.requestId ? html`<div class="muted mono small" title="Request id">${shortId(e.requestId)}</div>` : null}</td>
                  <td><${Details} details=${e.details} /></td>
                </tr>`,
              )}</tbody>
            </table></div>
            <${Pager} ...${list.data} onPage=${setPage} />`
    }
  </section>`;
}
