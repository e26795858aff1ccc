/** Per-host counters of a run (Ansible's recap): read from events, merged across restarts. Pure. */
import type { HostStats } from "../schemas/execution";

const STAT_KEYS = ["ok", "changed", "failed", "skipped", "unreachable", "rescued", "ignored"] as const;

/**
 * Per-host counters from a playbook_on_stats event: the agent's callback sends `{hosts: {host:
 * counters}, custom?}`; a bare `{host: counters}` and Ansible's `failures`/`dark` names are accepted too.
 */
export function statsFrom(data: unknown): Record<string, HostStats> | null {
  if (!data || typeof data !== "object") return null;
  const wrapped = (data as { hosts?: unknown }).hosts;
  const obj = wrapped && typeof wrapped === "object" ? wrapped : data;
  // Entries, not `out[host] = …`: a host may be named `__proto__` and must be kept like any other.
  const out: [string, HostStats][] = [];
  for (const [host, raw] of Object.entries(obj as Record<string, unknown>)) {
    if (!raw || typeof raw !== "object") continue;
    const r = raw as Record<string, unknown>;
    const num = (...keys: string[]) => {
      for (const k of keys) if (typeof r[k] === "number" && Number.isFinite(r[k])) return Math.max(0, Math.trunc(r[k] as number));
      return 0;
    };
    out.push([
      host,
      {
        ok: num("ok"),
        changed: num("changed"),
        failed: num("failed", "failures"),
        skipped: num("skipped"),
        unreachable: num("unreachable", "dark"),
        rescued: num("rescued"),
        ignored: num("ignored"),
      },
    ]);
  }
  return out.length ? Object.fromEntries(out) : null;
}

/**
 * `current` with `incoming` merged in (a restart limited to failed hosts keeps the others'
 * counters), and the hosts that failed or were unreachable. Built with a Map and
 * Object.fromEntries, which keep every host name an own property: assigning
 * `hostStats["__proto__"]` would replace the object's prototype instead of storing the host.
 */
export function mergeHostStats(
  current: Record<string, HostStats>,
  incoming: Record<string, HostStats>,
): { hostStats: Record<string, HostStats>; failedHosts: string[] } {
  const merged = new Map(Object.entries(current));
  for (const [host, st] of Object.entries(incoming)) merged.set(host, Object.fromEntries(STAT_KEYS.map((k) => [k, st[k] ?? 0])) as HostStats);
  const hostStats = Object.fromEntries(merged);
  const failedHosts = Object.entries(hostStats)
    .filter(([, st]) => st.failed > 0 || st.unreachable > 0)
    .map(([h]) => h);
  return { hostStats, failedHosts };
}
