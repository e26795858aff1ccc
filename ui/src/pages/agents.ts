import { useState } from "preact/hooks";
import { acct, api, can, enc, session, type Page } from "../api";
import type { Agent, CreatedRegistrationToken, RegistrationToken } from "../api-types";
import { CopyButton, Empty, Field, html, inputValue, Loading, ProblemBanner, useInterval, useLoad } from "../components";
import { ago, formatTime, shortId } from "../util";

function AgentTable({ agents, base, onChange, label }: { agents: Agent[]; base: string; onChange: () => void; label: string }) {
  const [error, setError] = useState<unknown>(null);
  const revoke = async (a: Agent) => {
    if (!confirm(`Revoke the agent "${a.name}"? Its credential stops working at once and the executions it holds are lost.`)) return;
    setError(null);
    try {
      await api("DELETE", `${base}/${enc(a.id)}`);
      onChange();
    } catch (e) {
      setError(e);
    }
  };
  return html`<${ProblemBanner} error=${error} />
    <div class="table-wrap"><table class="list" aria-label=${label} data-testid="agent-table">
      <thead><tr><th scope="col">Agent</th><th scope="col">State</th><th scope="col">Location</th><th scope="col">Version</th><th scope="col">Last seen</th><th scope="col">Concurrency</th><th scope="col">Running</th>${can("admin") ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : null}</tr></thead>
      <tbody>${agents.map(
        (a) => html`<tr key=${a.id}>
          <td><strong>${a.name}</strong><div class="muted small">${a.hostname ?? ""} <span class="mono">${shortId(a.id)}</span></div></td>
          <td><span class=${`badge ${a.online ? "st-success" : "st-offline"}`}>${a.online ? "online" : "offline"}</span></td>
          <td>${a.location ?? html`<span class="muted">default</span>`}</td>
          <td class="mono small">${a.version ?? "—"}</td>
          <td class="small" title=${formatTime(a.lastSeen)}>${ago(a.lastSeen)}</td>
          <td data-testid="concurrency">${a.concurrency}</td>
          <td>${a.runningExecutions.length ? html`<span title=${a.runningExecutions.join(", ")}>${a.runningExecutions.length}: <span class="mono small">${a.runningExecutions.map(shortId).join(", ")}</span></span>` : html`<span class="muted">idle</span>`}</td>
          ${can("admin") ? html`<td><button type="button" class="small danger" onClick=${() => revoke(a)}>Revoke</button></td>` : null}
        </tr>`,
      )}</tbody>
    </table></div>`;
}

function Tokens() {
  const list = useLoad((signal) => api<Page<RegistrationToken>>("GET", `/minions/${acct()}/tokens?size=100`, undefined, { signal }), []);
  const [form, setForm] = useState({ name: "", description: "", location: "" });
  const [created, setCreated] = useState<CreatedRegistrationToken | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const body = { name: form.name.trim() || null, description: form.description.trim() || null, location: form.location.trim() || null };
      setCreated(await api<CreatedRegistrationToken>("POST", `/minions/${acct()}/tokens`, body));
      setForm({ name: "", description: "", location: "" });
      list.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const revoke = async (t: RegistrationToken) => {
    if (!confirm(`Revoke the registration token "${t.name ?? t.id}"? Agents it registered keep working.`)) return;
    setError(null);
    try {
      await api("DELETE", `/minions/${acct()}/tokens/${enc(t.id)}`);
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  const origin = location.origin;
  const command = created
    ? [
        `npm install -g ${origin}/downloads/runner-agent.tgz`,
        `RUNNER_TOKEN=${created.token} runner-agent register --url ${origin}${created.name ? ` --name '${String(created.name).replace(/'/g, "'\\''")}'` : ""}`,
        `runner-agent run --concurrency 2`,
      ].join("\n")
    : "";
  return html`<section class="card" aria-labelledby="tokens-h">
    <h2 id="tokens-h">Registration tokens</h2>
    <p class="muted small">An agent registers once with a token and gets a credential of its own. Revoking a token stops new registrations only.</p>
    <${ProblemBanner} error=${error ?? list.error} fields=${["name", "description", "location"]} />
    ${
      created
        ? html`<div class="created" role="status" data-testid="created-token">
          <p><strong>Token created. It is shown only this once:</strong> copy it now.</p>
          <pre class="mono code">${command}</pre>
          <div class="actions"><${CopyButton} text=${command} label="Copy the commands" /><${CopyButton} text=${created.token} label="Copy the token" /><button type="button" class="small" onClick=${() => setCreated(null)}>Done</button></div>
        </div>`
        : null
    }
    ${
      !list.data
        ? html`<${Loading} />`
        : list.data.results.length === 0
          ? html`<${Empty}>No registration tokens${can("admin") ? " — create one to register an agent" : ""}.<//>`
          : html`<ul class="plain">${list.data.results.map(
              (t) => html`<li key=${t.id}>
              <strong>${t.name ?? shortId(t.id)}</strong> <span class="muted small">${t.location ? `location ${t.location} · ` : ""}created ${ago(t.createdTime)}</span>
              ${t.description ? html`<div class="small">${t.description}</div>` : null}
              ${can("admin") ? html` <button type="button" class="small danger" onClick=${() => revoke(t)}>Revoke</button>` : null}
            </li>`,
            )}</ul>`
    }
    ${
      can("admin")
        ? html`<form onSubmit=${create} class="token-form">
          <h3>New registration token</h3>
          <div class="row3">
            <${Field} label="Name" id="tok-name" error=${error} field="name"><input id="tok-name" value=${form.name} onInput=${(e: Event) => setForm({ ...form, name: inputValue(e) })} placeholder="dc1" /><//>
            <${Field} label="Location" id="tok-location" error=${error} field="location" hint="Empty: the default location."><input id="tok-location" value=${form.location} onInput=${(e: Event) => setForm({ ...form, location: inputValue(e) })} /><//>
            <${Field} label="Description" id="tok-description" error=${error} field="description"><input id="tok-description" value=${form.description} onInput=${(e: Event) => setForm({ ...form, description: inputValue(e) })} /><//>
          </div>
          <button type="submit" class="primary" disabled=${busy}>Create token</button>
        </form>`
        : null
    }
  </section>`;
}

export function Agents() {
  const agents = useLoad((signal) => api<Page<Agent>>("GET", `/minions/${acct()}?size=100`, undefined, { signal }), []);
  const operator = session()?.operator;
  const shared = useLoad(
    (signal) => (operator ? api<Page<Agent>>("GET", `/minions/~shared?size=100`, undefined, { signal }) : Promise.resolve(null)),
    [operator],
  );
  useInterval(() => {
    agents.reload();
    if (operator) shared.reload();
  }, 10_000);
  return html`<section>
    <div class="page-head"><h1 tabindex="-1">Agents</h1></div>
    <${ProblemBanner} error=${agents.error} />
    ${
      !agents.data
        ? html`<${Loading} />`
        : agents.data.results.length === 0
          ? html`<${Empty}>No agents of this account yet${can("admin") ? " — create a registration token below and run the commands it shows on a machine of your network" : ""}. ${operator ? "" : "Executions may still run on the operator's shared pool."}<//>`
          : html`<${AgentTable} agents=${agents.data.results} base=${`/minions/${acct()}`} onChange=${agents.reload} label="Agents" />`
    }
    ${
      operator && shared.data
        ? html`<h2>Shared pool</h2>
          ${shared.data.results.length === 0 ? html`<${Empty}>No shared-pool agents.<//>` : html`<${AgentTable} agents=${shared.data.results} base="/minions/~shared" onChange=${shared.reload} label="Shared-pool agents" />`}`
        : null
    }
    <${Tokens} />
  </section>`;
}
