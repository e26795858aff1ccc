import { useEffect, useState } from "preact/hooks";
import { acct, api, ApiError, can, enc } from "../api";
import type { Job } from "../api-types";
import { Field, FieldMsg, html, inputChecked, inputValue, Loading, navigate, ProblemBanner, Secret } from "../components";
import { fromBase64, parseJsonObject, pretty, splitList, toBase64 } from "../util";

type SecretValue = string | null | undefined;

interface HostRow {
  id: string;
  vars: string;
  hasKey: boolean;
  key: SecretValue;
}
interface CallbackRow {
  url: string;
  level: string;
}

interface FormState {
  name: string;
  description: string;
  source: "inline" | "repository";
  playbookText: string;
  repoUrl: string;
  repoBranch: string;
  repoPlaybook: string;
  repoUsername: string;
  repoHasPassword: boolean;
  repoPassword: SecretValue;
  repoHasKey: boolean;
  repoKey: SecretValue;
  hosts: HostRow[];
  useDynamicInventory: boolean;
  location: string;
  properties: string;
  tags: string;
  ttl: string;
  forks: string;
  callbacks: CallbackRow[];
  hasKey: boolean;
  key: SecretValue;
}

const LOCAL_VARS = pretty({ ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" });

const blank = (): FormState => ({
  name: "",
  description: "",
  source: "inline",
  playbookText: "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: ping\n      ansible.builtin.ping:\n",
  repoUrl: "",
  repoBranch: "",
  repoPlaybook: "",
  repoUsername: "",
  repoHasPassword: false,
  repoPassword: undefined,
  repoHasKey: false,
  repoKey: undefined,
  hosts: [{ id: "localhost", vars: LOCAL_VARS, hasKey: false, key: undefined }],
  useDynamicInventory: false,
  location: "",
  properties: "",
  tags: "",
  ttl: "180",
  forks: "",
  callbacks: [],
  hasKey: false,
  key: undefined,
});

function fromJob(j: Job): FormState {
  return {
    name: j.name ?? "",
    description: j.description ?? "",
    source: j.repository ? "repository" : "inline",
    playbookText: j.playbook ? (fromBase64(j.playbook) ?? "") : "",
    repoUrl: j.repository?.url ?? "",
    repoBranch: j.repository?.branch ?? "",
    repoPlaybook: j.repository?.defaultPlaybook ?? "",
    repoUsername: j.repository?.credentials?.username ?? "",
    repoHasPassword: !!j.repository?.credentials?.hasPassword,
    repoPassword: undefined,
    repoHasKey: !!j.repository?.credentials?.hasSshPrivateKey,
    repoKey: undefined,
    hosts: (j.hosts ?? []).map((h) => ({
      id: h.id,
      vars: Object.keys(h.hostVars ?? {}).length ? pretty(h.hostVars) : "",
      hasKey: !!h.hasSshPrivateKey,
      key: undefined,
    })),
    useDynamicInventory: !!j.useDynamicInventory,
    location: j.location ?? "",
    properties: Object.keys(j.properties ?? {}).length ? pretty(j.properties) : "",
    tags: (j.playbookTags ?? []).join(", "),
    ttl: String(j.executionTtl ?? 180),
    forks: j.forks ? String(j.forks) : "",
    callbacks: (j.callbacks ?? []).map((c) => ({ url: c.url, level: c.level ?? "DEBUG" })),
    hasKey: !!j.hasSshPrivateKey,
    key: undefined,
  };
}

/** A secret as the API takes it: omitted keeps the stored one, null removes it; base64 of a PEM typed in. */
function secretOut(v: SecretValue): string | null | undefined {
  if (v === undefined || v === null) return v;
  const t = v.trim();
  if (!t) return undefined;
  return /^-----BEGIN /.test(t) ? toBase64(t.endsWith("\n") ? t : t + "\n") : t;
}

/** The body for POST/PUT; local mistakes (bad JSON) come back as field errors in the API's shape. */
function toBody(f: FormState): { body?: Record<string, unknown>; errors: { field: string; message: string }[] } {
  const errors: { field: string; message: string }[] = [];
  const json = (text: string, field: string, what: string) => {
    try {
      return parseJsonObject(text, what);
    } catch (e) {
      errors.push({ field, message: (e as Error).message });
      return undefined;
    }
  };
  const body: Record<string, unknown> = {
    name: f.name.trim() || null,
    description: f.description.trim() || null,
    executionTtl: f.ttl.trim() ? Number(f.ttl) : null,
    // Kept on every save: a PUT without it would put the job back to Ansible's default.
    forks: f.forks.trim() ? Number(f.forks) : null,
    playbookTags: splitList(f.tags),
    properties: json(f.properties, "properties", "Properties") ?? {},
    useDynamicInventory: f.useDynamicInventory,
    location: f.location.trim() || null,
    callbacks: f.callbacks.filter((c) => c.url.trim()).map((c) => ({ url: c.url.trim(), level: c.level })),
    hosts: f.hosts.map((h, i) => {
      const host: Record<string, unknown> = { id: h.id.trim() };
      const vars = json(h.vars, `hosts.${i}.hostVars`, `Host ${h.id || i + 1}'s variables`);
      if (vars) host.hostVars = vars;
      const key = secretOut(h.key);
      if (key !== undefined) host.sshPrivateKey = key;
      return host;
    }),
  };
  if (f.ttl.trim() !== "" && !/^\d+$/.test(f.ttl.trim())) errors.push({ field: "executionTtl", message: "must be a whole number of minutes" });
  if (f.forks.trim() !== "" && !/^\d+$/.test(f.forks.trim())) errors.push({ field: "forks", message: "must be a whole number" });
  const key = secretOut(f.key);
  if (key !== undefined) body.sshPrivateKey = key;
  if (f.source === "inline") {
    body.playbook = f.playbookText.trim() ? toBase64(f.playbookText) : null;
    body.repository = null;
  } else {
    body.playbook = null;
    const credentials: Record<string, unknown> = { username: f.repoUsername.trim() || null };
    const pw = f.repoPassword === undefined ? undefined : f.repoPassword === null ? null : f.repoPassword || undefined;
    if (pw !== undefined) credentials.password = pw;
    const rk = secretOut(f.repoKey);
    if (rk !== undefined) credentials.sshPrivateKey = rk;
    body.repository = {
      url: f.repoUrl.trim() || undefined,
      branch: f.repoBranch.trim() || null,
      defaultPlaybook: f.repoPlaybook.trim() || undefined,
      credentials,
    };
  }
  return { body, errors };
}

export function JobForm({ jobId }: { jobId?: string }) {
  const [form, setForm] = useState<FormState | null>(jobId ? null : blank());
  const [loadError, setLoadError] = useState<unknown>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!jobId) return;
    api<Job>("GET", `/jobs/${acct()}/${enc(jobId)}`).then((j) => setForm(fromJob(j)), setLoadError);
  }, [jobId]);

  if (!can("user")) return html`<div class="empty">Your role (viewer) may not change jobs.</div>`;
  if (loadError) return html`<${ProblemBanner} error=${loadError} />`;
  if (!form) return html`<${Loading} what="Loading the job" />`;

  const set = (patch: Partial<FormState>) => setForm({ ...form, ...patch });
  const setHost = (i: number, patch: Partial<HostRow>) => set({ hosts: form.hosts.map((h, j) => (j === i ? { ...h, ...patch } : h)) });
  const setCallback = (i: number, patch: Partial<CallbackRow>) => set({ callbacks: form.callbacks.map((c, j) => (j === i ? { ...c, ...patch } : c)) });
  const input = (k: keyof FormState) => (e: Event) => set({ [k]: inputValue(e) } as Partial<FormState>);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const { body, errors } = toBody(form);
    if (errors.length) {
      setError(new ApiError(400, { title: "Check the form", detail: "Some fields need fixing; see below.", errors }));
      return;
    }
    setBusy(true);
    try {
      const saved = jobId ? await api<Job>("PUT", `/jobs/${acct()}/${enc(jobId)}`, body) : await api<Job>("POST", `/jobs/${acct()}`, body);
      navigate("jobs", saved.id);
    } catch (err) {
      setError(err);
      queueMicrotask(() => document.querySelector<HTMLElement>(".problem")?.scrollIntoView({ block: "center" }));
    } finally {
      setBusy(false);
    }
  };

  const placed = [
    "name",
    "description",
    "executionTtl",
    "forks",
    "playbook",
    "repository",
    "hosts",
    "properties",
    "playbookTags",
    "callbacks",
    "sshPrivateKey",
    "location",
    "useDynamicInventory",
  ];
  return html`<form class="job-form" onSubmit=${submit} novalidate>
    <div class="page-head"><h1 tabindex="-1">${jobId ? `Edit ${form.name || "job"}` : "New job"}</h1></div>
    <${ProblemBanner} error=${error} fields=${placed} />

    <fieldset><legend>Job</legend>
      <${Field} label="Name" id="job-name" error=${error} field="name">
        <input id="job-name" value=${form.name} onInput=${input("name")} maxlength="200" />
      <//>
      <${Field} label="Description" id="job-description" error=${error} field="description">
        <textarea id="job-description" rows="2" value=${form.description} onInput=${input("description")} maxlength="4000"></textarea>
      <//>
    </fieldset>

    <fieldset><legend>Playbook</legend>
      <div class="radios" role="radiogroup" aria-label="Where the playbook comes from">
        <label><input type="radio" name="source" value="inline" checked=${form.source === "inline"} onChange=${() => set({ source: "inline" })} /> Inline</label>
        <label><input type="radio" name="source" value="repository" checked=${form.source === "repository"} onChange=${() => set({ source: "repository" })} /> Git repository</label>
      </div>
      ${
        form.source === "inline"
          ? html`<${Field} label="Playbook (YAML)" id="job-playbook" error=${error} field="playbook">
              <textarea id="job-playbook" rows="10" class="mono" spellcheck="false" value=${form.playbookText} onInput=${input("playbookText")}></textarea>
              <input type="file" accept=".yml,.yaml,text/yaml,text/plain" aria-label="Playbook from a file" onChange=${async (e: Event) => {
                const file = (e.currentTarget as HTMLInputElement).files?.[0];
                if (file) set({ playbookText: await file.text() });
              }} />
            <//>`
          : html`<${Field} label="Repository URL" id="repo-url" error=${error} field="repository.url">
              <input id="repo-url" value=${form.repoUrl} onInput=${input("repoUrl")} placeholder="https://git.example.com/ops/playbooks.git" />
            <//>
            <div class="row2">
              <${Field} label="Branch or tag" id="repo-branch" error=${error} field="repository.branch" hint="Empty: the default branch.">
                <input id="repo-branch" value=${form.repoBranch} onInput=${input("repoBranch")} />
              <//>
              <${Field} label="Playbook path" id="repo-playbook" error=${error} field="repository.defaultPlaybook">
                <input id="repo-playbook" value=${form.repoPlaybook} onInput=${input("repoPlaybook")} placeholder="site.yml" />
              <//>
            </div>
            <${Field} label="Username" id="repo-username" error=${error} field="repository.credentials.username">
              <input id="repo-username" value=${form.repoUsername} onInput=${input("repoUsername")} autocomplete="off" />
            <//>
            <div class="field secret">
              <span class="label" id="repo-password-label">Password or access token</span>
              <span class=${`secret-state ${form.repoHasPassword ? "is-set" : ""}`}>${form.repoPassword === undefined ? (form.repoHasPassword ? "set" : "not set") : form.repoPassword === null ? "will be removed" : "will be replaced"}</span>
              <span class="secret-actions">
                ${
                  form.repoPassword === undefined
                    ? html`<button type="button" class="small" onClick=${() => set({ repoPassword: "" })}>${form.repoHasPassword ? "Replace" : "Set"}</button>
                      ${form.repoHasPassword ? html`<button type="button" class="small" onClick=${() => set({ repoPassword: null })}>Remove</button>` : null}`
                    : html`<button type="button" class="small" onClick=${() => set({ repoPassword: undefined })}>Keep</button>`
                }
              </span>
              ${typeof form.repoPassword === "string" ? html`<input type="password" aria-labelledby="repo-password-label" autocomplete="new-password" value=${form.repoPassword} onInput=${(e: Event) => set({ repoPassword: inputValue(e) })} />` : null}
              <${FieldMsg} error=${error} field="repository.credentials.password" />
            </div>
            <${Secret} id="repo-key" label="Repository SSH key" isSet=${form.repoHasKey} value=${form.repoKey} onChange=${(v: SecretValue) => set({ repoKey: v })} error=${error} field="repository.credentials.sshPrivateKey" />
            <${FieldMsg} error=${error} field="repository" />`
      }
    </fieldset>

    <fieldset><legend>Hosts</legend>
      <label class="check"><input type="checkbox" checked=${form.useDynamicInventory} onChange=${(e: Event) => set({ useDynamicInventory: inputChecked(e) })} /> Run on the account's whole inventory (dynamic inventory)</label>
      <${FieldMsg} error=${error} field="hosts" />
      ${form.hosts.map(
        (h, i) => html`<div class="host-row" key=${i}>
          <div class="row2">
            <${Field} label=${`Host ${i + 1}`} id=${`host-${i}-id`} error=${error} field=${`hosts.${i}.id`}>
              <input id=${`host-${i}-id`} value=${h.id} onInput=${(e: Event) => setHost(i, { id: inputValue(e) })} placeholder="web1" />
            <//>
            <${Field} label=${`Host ${i + 1} variables (JSON)`} id=${`host-${i}-vars`} error=${error} field=${`hosts.${i}.hostVars`}>
              <textarea id=${`host-${i}-vars`} rows="3" class="mono" spellcheck="false" value=${h.vars} onInput=${(e: Event) => setHost(i, { vars: inputValue(e) })} placeholder='{"ansible_host": "10.0.0.1"}'></textarea>
            <//>
          </div>
          <${Secret} id=${`host-${i}-key`} label=${`Host ${i + 1} SSH key`} isSet=${h.hasKey} value=${h.key} onChange=${(v: SecretValue) => setHost(i, { key: v })} error=${error} field=${`hosts.${i}.sshPrivateKey`} />
          <button type="button" class="small danger" onClick=${() => set({ hosts: form.hosts.filter((_, j) => j !== i) })}>Remove host ${i + 1}</button>
        </div>`,
      )}
      <button type="button" class="small" onClick=${() => set({ hosts: [...form.hosts, { id: "", vars: "", hasKey: false, key: undefined }] })}>Add a host</button>
      <${Secret} id="job-key" label="Default SSH key (for hosts without their own)" isSet=${form.hasKey} value=${form.key} onChange=${(v: SecretValue) => set({ key: v })} error=${error} field="sshPrivateKey" />
      <${Field} label="Location" id="job-location" error=${error} field="location" hint="Routes executions to agents of this location (empty: the default).">
        <input id="job-location" value=${form.location} onInput=${input("location")} />
      <//>
    </fieldset>

    <fieldset><legend>Run</legend>
      <${Field} label="Properties (extra vars, JSON)" id="job-properties" error=${error} field="properties">
        <textarea id="job-properties" rows="4" class="mono" spellcheck="false" value=${form.properties} onInput=${input("properties")} placeholder='{"version": "1.2.3"}'></textarea>
      <//>
      <div class="row2">
        <${Field} label="Tags" id="job-tags" error=${error} field="playbookTags" hint="Comma-separated; empty runs every task.">
          <input id="job-tags" value=${form.tags} onInput=${input("tags")} />
        <//>
        <${Field} label="Time to live (minutes)" id="job-ttl" error=${error} field="executionTtl">
          <input id="job-ttl" inputmode="numeric" value=${form.ttl} onInput=${input("ttl")} />
        <//>
      </div>
      <${Field} label="Forks" id="job-forks" error=${error} field="forks" hint="Hosts worked on at once, 1-500 (empty: Ansible's default, 5).">
        <input id="job-forks" inputmode="numeric" value=${form.forks} onInput=${input("forks")} />
      <//>
    </fieldset>

    <fieldset><legend>Callbacks (webhooks)</legend>
      ${form.callbacks.length === 0 ? html`<p class="muted">No callbacks.</p>` : null}
      ${form.callbacks.map(
        (c, i) => html`<div class="row2 callback-row" key=${i}>
          <${Field} label=${`Callback ${i + 1} URL`} id=${`cb-${i}-url`} error=${error} field=${`callbacks.${i}.url`}>
            <input id=${`cb-${i}-url`} value=${c.url} onInput=${(e: Event) => setCallback(i, { url: inputValue(e) })} placeholder="https://hooks.example.com/runner" />
          <//>
          <${Field} label=${`Callback ${i + 1} level`} id=${`cb-${i}-level`} error=${error} field=${`callbacks.${i}.level`}>
            <select id=${`cb-${i}-level`} value=${c.level} onChange=${(e: Event) => setCallback(i, { level: inputValue(e) })}>
              <option value="DEBUG">DEBUG: every status event</option>
              <option value="ERROR">ERROR: failures only</option>
              <option value="RESULT">RESULT: the final status</option>
            </select>
          <//>
          <button type="button" class="small danger" onClick=${() => set({ callbacks: form.callbacks.filter((_, j) => j !== i) })}>Remove callback ${i + 1}</button>
        </div>`,
      )}
      <button type="button" class="small" onClick=${() => set({ callbacks: [...form.callbacks, { url: "", level: "DEBUG" }] })}>Add a callback</button>
      <${FieldMsg} error=${error} field="callbacks" />
    </fieldset>

    <div class="actions">
      <button type="submit" class="primary" disabled=${busy}>${busy ? "Saving…" : jobId ? "Save" : "Create job"}</button>
      <a class="button" href=${jobId ? `#/jobs/${enc(jobId)}` : "#/jobs"}>Cancel</a>
    </div>
  </form>`;
}
