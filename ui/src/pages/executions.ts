import { useState } from "preact/hooks";
import { acct, api, type Page } from "../api";
import type { Execution } from "../api-types";
import { Empty, html, inputValue, Loading, Pager, ProblemBanner, useInterval, useLoad } from "../components";
import { isTerminal } from "../util";
import { ExecutionRows } from "./job";

const STATUSES = ["PENDING", "INITIALIZING", "RUNNING", "SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPING", "STOPPED", "KILLING", "KILLED"];

/** The account's executions, newest first, filtered by status. */
export function Executions() {
  const [page, setPage] = useState(0);
  const [status, setStatus] = useState("");
  const list = useLoad(
    (signal) => api<Page<Execution>>("GET", `/jobs/${acct()}/executions?page=${page}&size=50${status ? `&status=${status}` : ""}`, undefined, { signal }),
    [page, status],
  );
  useInterval(
    list.reload,
    3000,
    (list.data?.results ?? []).some((x) => !isTerminal(x.status)),
  );
  return html`<section>
    <div class="page-head"><h1 tabindex="-1">Executions</h1></div>
    <div class="toolbar">
      <label for="exec-status">Status</label>
      <select id="exec-status" value=${status} onChange=${(e: Event) => {
        setStatus(inputValue(e));
        setPage(0);
      }}>
        <option value="">any</option>
        ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
      </select>
    </div>
    <${ProblemBanner} error=${list.error} />
    ${
      !list.data
        ? html`<${Loading} />`
        : list.data.totalSize === 0
          ? html`<${Empty}>${status ? `No ${status} executions.` : html`No executions yet — start one from a <a href="#/jobs">job</a>.`}<//>`
          : html`<${ExecutionRows} rows=${list.data.results} showJob=${true} /><${Pager} ...${list.data} onPage=${setPage} />`
    }
  </section>`;
}
