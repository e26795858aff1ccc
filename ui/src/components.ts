// Small shared pieces. Everything user-provided goes in as text children or attribute values
// (Preact sets them as text, never as HTML): the dashboard has no innerHTML anywhere.
import { html } from "htm/preact";
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api";

export { html };

/** The hash route: `#/jobs/abc` → ["jobs", "abc"]. */
export function currentRoute(): string[] {
  return location.hash.replace(/^#\/?/, "").split("?")[0]!.split("/").filter(Boolean).map(decodeURIComponent);
}
export const href = (...parts: string[]) => `#/${parts.map(encodeURIComponent).join("/")}`;
export function navigate(...parts: string[]) {
  location.hash = href(...parts).slice(1);
}

/** What a form control's input or change event says: its value, or whether it is checked. */
export const inputValue = (e: Event) => (e.currentTarget as HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement).value;
export const inputChecked = (e: Event) => (e.currentTarget as HTMLInputElement).checked;

export function Status({ status }: { status?: string | null }) {
  if (!status) return html`<span class="muted">—</span>`;
  return html`<span class=${`badge st-${status.toLowerCase()}`} data-status=${status}>${status}</span>`;
}

/** An API problem: its title and detail, and the field errors no field took. */
export function ProblemBanner({ error, fields = [] }: { error: unknown; fields?: string[] }) {
  if (!error) return null;
  if (error instanceof ApiError) {
    const p = error.problem;
    const rest = (p.errors ?? []).filter((e) => !fields.some((f) => e.field === f || e.field.startsWith(f + ".")));
    return html`<div class="problem" role="alert">
      <strong>${p.title ?? `Error ${error.status}`}</strong>${p.detail ? html`: <span>${p.detail}</span>` : null}
      ${rest.length ? html`<ul>${rest.map((e) => html`<li><code>${e.field}</code> ${e.message}</li>`)}</ul>` : null}
    </div>`;
  }
  return html`<div class="problem" role="alert">${(error as Error).message ?? String(error)}</div>`;
}

/** The problem+json messages for one field, shown right under it. */
export function FieldMsg({ error, field, id }: { error: unknown; field: string; id?: string }) {
  if (!(error instanceof ApiError)) return null;
  const msgs = error.fieldMessages(field);
  if (!msgs.length) return null;
  return html`<p class="field-error" id=${id} role="alert">${msgs.join("; ")}</p>`;
}

export function Field(props: { label: string; id: string; error?: unknown; field?: string; hint?: string; children: ComponentChildren }) {
  return html`<div class="field">
    <label for=${props.id}>${props.label}</label>
    ${props.children}
    ${props.hint ? html`<p class="hint">${props.hint}</p>` : null}
    ${props.field ? html`<${FieldMsg} error=${props.error} field=${props.field} id=${`${props.id}-error`} />` : null}
  </div>`;
}

export function Empty({ children }: { children: ComponentChildren }) {
  return html`<div class="empty">${children}</div>`;
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return html`<p class="loading" aria-live="polite">${what}…</p>`;
}

/** Loads data, with reload; `null` from the loader means "not available" (e.g. a 404 panel). */
export function useLoad<T>(
  load: (signal: AbortSignal) => Promise<T>,
  deps: unknown[],
): { data: T | undefined; error: unknown; loading: boolean; reload: () => void; set: (data: T) => void } {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctrl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    load(ctrl.signal).then(
      (data) => !ctrl.signal.aborted && setState({ data, error: null, loading: false }),
      (error) => !ctrl.signal.aborted && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => ctrl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  /** Shows data the page already has (e.g. what an action answered) until the next load. */
  const set = useCallback((data: T) => setState({ data, error: null, loading: false }), []);
  return { ...state, reload, set };
}

/** Calls `fn` every `ms` while `active`. */
export function useInterval(fn: () => void, ms: number, active = true) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => saved.current(), ms);
    return () => clearInterval(t);
  }, [ms, active]);
}

/** Re-renders every second (for live timers) while `active`. */
export function useNow(active: boolean): number {
  const [now, setNow] = useState(Date.now());
  useInterval(() => setNow(Date.now()), 1000, active);
  return now;
}

/**
 * A write-only secret: shown as "set" / "not set", never its value. `value` is undefined (keep
 * what is stored), null (remove it) or the new text (replace it).
 */
export function Secret(props: {
  id: string;
  label: string;
  isSet: boolean;
  value: string | null | undefined;
  onChange: (v: string | null | undefined) => void;
  error?: unknown;
  field?: string;
  hint?: string;
}) {
  const { id, label, isSet, value, onChange } = props;
  const state = value === undefined ? (isSet ? "set" : "not set") : value === null ? "will be removed" : "will be replaced";
  return html`<div class="field secret">
    <span class="label" id=${`${id}-label`}>${label}</span>
    <span class=${`secret-state ${isSet ? "is-set" : ""}`} data-testid=${`${id}-state`}>${state}</span>
    <span class="secret-actions">
      ${
        value === undefined
          ? html`<button type="button" class="small" onClick=${() => onChange("")} aria-describedby=${`${id}-label`}>${isSet ? "Replace" : "Set"}</button>
            ${isSet ? html`<button type="button" class="small" onClick=${() => onChange(null)} aria-describedby=${`${id}-label`}>Remove</button>` : null}`
          : html`<button type="button" class="small" onClick=${() => onChange(undefined)} aria-describedby=${`${id}-label`}>Keep ${isSet ? "stored" : "unset"}</button>`
      }
    </span>
    ${
      typeof value === "string"
        ? html`<textarea id=${id} rows="3" class="mono" aria-labelledby=${`${id}-label`} placeholder="Paste the private key (PEM or base64), or pick a file" autocomplete="off" spellcheck="false" value=${value} onInput=${(e: Event) => onChange(inputValue(e))}></textarea>
          <input type="file" aria-label=${`${label}: from a file`} onChange=${async (e: Event) => {
            const f = (e.currentTarget as HTMLInputElement).files?.[0];
            if (f) onChange(await f.text());
          }} />`
        : null
    }
    ${props.hint ? html`<p class="hint">${props.hint}</p>` : null}
    ${props.field ? html`<${FieldMsg} error=${props.error} field=${props.field} />` : null}
  </div>`;
}

/** Previous/next for a page answer. */
export function Pager({ page, size, totalSize, onPage }: { page: number; size: number; totalSize: number; onPage: (p: number) => void }) {
  const pages = Math.max(1, Math.ceil(totalSize / size));
  if (pages <= 1) return null;
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" class="small" disabled=${page <= 0} onClick=${() => onPage(page - 1)}>Previous</button>
    <span>Page ${page + 1} of ${pages} (${totalSize})</span>
    <button type="button" class="small" disabled=${page + 1 >= pages} onClick=${() => onPage(page + 1)}>Next</button>
  </nav>`;
}

/** A button that copies text to the clipboard and says so. */
export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState<string | null>(null);
  return html`<button type="button" class="small" onClick=${async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone("Copied");
    } catch {
      setDone("Select and copy it");
    }
    setTimeout(() => setDone(null), 2000);
  }}>${done ?? label}</button>`;
}
