import { useState } from "preact/hooks";
import { acct, api, ApiError, can } from "../api";
import type { Inventory as InventoryAnswer } from "../api-types";
import { Empty, Field, html, inputValue, Loading, ProblemBanner, useLoad } from "../components";
import { pretty } from "../util";

/** The account's inventory: hosts, their groups and variables; users may replace it as JSON. */
export function Inventory() {
  const inv = useLoad((signal) => api<InventoryAnswer>("GET", `/inventory/${acct()}`, undefined, { signal }), []);
  const [query, setQuery] = useState("");
  const [editing, setEditing] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const hosts = inv.data?.hosts ?? [];
  const groups = new Map<string, string[]>();
  for (const h of hosts) for (const g of h.groups ?? []) groups.set(g, [...(groups.get(g) ?? []), h.id]);
  const q = query.trim().toLowerCase();
  const shown = hosts.filter((h) => !q || h.id.toLowerCase().includes(q) || (h.groups ?? []).some((g) => g.toLowerCase().includes(q)));

  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    let body: unknown;
    try {
      body = JSON.parse(editing ?? "");
    } catch (err) {
      return setError(new ApiError(400, { title: "Not JSON", detail: (err as Error).message, errors: [{ field: "body", message: "is not valid JSON" }] }));
    }
    setBusy(true);
    try {
      await api("PUT", `/inventory/${acct()}`, body);
      setEditing(null);
      inv.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return html`<section>
    <div class="page-head">
      <h1 tabindex="-1">Inventory</h1>
      ${
        can("user") && editing === null
          ? html`<button type="button" onClick=${() => {
              setError(null);
              setEditing(pretty({ hosts }));
            }}>Edit as JSON</button>`
          : null
      }
    </div>
    <p class="muted">The hosts that jobs with “dynamic inventory” run on. Host variables are not secrets: they are stored and shown as given.</p>
    <${ProblemBanner} error=${inv.error} />
    ${
      editing !== null
        ? html`<form onSubmit=${save} class="card">
          <${ProblemBanner} error=${error} fields=${["body"]} />
          <${Field} label="Inventory (JSON: {hosts: [{id, groups?, hostVars?}]})" id="inventory-json" error=${error} field="hosts">
            <textarea id="inventory-json" rows="16" class="mono" spellcheck="false" value=${editing} onInput=${(e: Event) => setEditing(inputValue(e))}></textarea>
          <//>
          <div class="actions"><button type="submit" class="primary" disabled=${busy}>Replace the inventory</button><button type="button" onClick=${() => setEditing(null)}>Cancel</button></div>
        </form>`
        : null
    }
    ${
      !inv.data
        ? html`<${Loading} />`
        : hosts.length === 0
          ? html`<${Empty}>No hosts in the inventory yet${can("user") ? " — edit it to add some" : ""}.<//>`
          : html`<div class="toolbar">
              <label for="inv-search" class="visually-hidden">Search hosts and groups</label>
              <input id="inv-search" type="search" placeholder="Search hosts or groups" value=${query} onInput=${(e: Event) => setQuery(inputValue(e))} />
            </div>
            <div class="grid2">
              <section class="card" aria-labelledby="inv-hosts"><h2 id="inv-hosts">Hosts (${hosts.length})</h2>
                ${
                  shown.length === 0
                    ? html`<${Empty}>No host matches.<//>`
                    : html`<div class="table-wrap"><table class="list" aria-label="Hosts">
                  <thead><tr><th scope="col">Host</th><th scope="col">Groups</th><th scope="col">Variables</th></tr></thead>
                  <tbody>${shown.slice(0, 500).map((h) => html`<tr key=${h.id}><th scope="row" class="mono">${h.id}</th><td>${(h.groups ?? []).map((g) => html`<span class="tag">${g}</span> `)}</td><td class="mono small">${h.hostVars && Object.keys(h.hostVars).length ? JSON.stringify(h.hostVars) : ""}</td></tr>`)}</tbody>
                </table></div>${shown.length > 500 ? html`<p class="muted small">Showing 500 of ${shown.length}; search to narrow.</p>` : null}`
                }
              </section>
              <section class="card" aria-labelledby="inv-groups"><h2 id="inv-groups">Groups (${groups.size})</h2>
                ${groups.size === 0 ? html`<${Empty}>No groups: every host is ungrouped.<//>` : html`<ul class="plain">${[...groups.entries()].sort().map(([g, hs]) => html`<li><strong>${g}</strong> <span class="muted small">${hs.length} host${hs.length === 1 ? "" : "s"}: ${hs.slice(0, 10).join(", ")}${hs.length > 10 ? ", …" : ""}</span></li>`)}</ul>`}
              </section>
            </div>`
    }
  </section>`;
}
