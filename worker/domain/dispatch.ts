import { accountHasAgents, agentPresence } from "../db/agents";
import { dispatcherKey, isOnline } from "./contracts";
import { readSettings } from "./settings";

/** What routing needs of a job (a subset of `getJobSummary`'s answer). */
export interface RoutableJob {
  location: string | null;
  /** The hosts' `rnr_location` values, in host order. */
  hostLocations: string[];
}

/**
 * Which dispatcher serves an execution of this job: the job's `location` (else the first host's
 * `rnr_location`) names a location of the account's own agents, and the work waits there even if
 * no agent of that location is registered yet (only those agents can reach that network).
 *
 * Without a location: the account's default-location queue when one of its default-location
 * agents is online (seen within ONLINE_WINDOW_MS: an agent registered long ago and gone since does
 * not count). Otherwise an account with no agents at all (it installed nothing) uses the shared
 * pool; one that has agents keeps its work (and the secrets in it) on its own queue, where the
 * waiting reason says its agents are offline, unless its `sharedPoolFallback` setting allows the
 * shared pool. `fallback` is that setting when the caller has read it already.
 */
export async function routeExecution(env: Env, accountAlias: string, job: RoutableJob, fallback?: boolean): Promise<string> {
  const wanted = [job.location, ...job.hostLocations].map((l) => l?.trim()).find((l) => !!l);
  if (wanted) return dispatcherKey(accountAlias, wanted);
  const own = dispatcherKey(accountAlias, null);
  if (isOnline((await agentPresence(env.DB, accountAlias, null)).lastSeen, Date.now())) return own;
  if (!(await accountHasAgents(env.DB, accountAlias))) return dispatcherKey(null, null);
  const mayFallBack = fallback ?? (await readSettings(env, accountAlias)).sharedPoolFallback;
  return mayFallBack ? dispatcherKey(null, null) : own;
}

/** The dispatcher an agent polls: its account's (or the shared pool's) queue for its location. */
export function agentDispatcherKey(agent: { account_alias: string | null; location: string | null }): string {
  return dispatcherKey(agent.account_alias, agent.location);
}

export function dispatcherStub(env: Env, key: string) {
  return env.DISPATCHER.get(env.DISPATCHER.idFromName(key));
}
