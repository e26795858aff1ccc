import { ownAgents, type OwnAgents } from "../db/agents";
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
  if (wantedLocation(job)) return routeWith(accountAlias, job, null, false, Date.now());
  const own = await ownAgents(env.DB, accountAlias); // one statement answers both questions
  const now = Date.now();
  // The setting is read only when it decides.
  const decides = !isOnline(own.defaultLastSeen, now) && own.any;
  const mayFallBack = decides && (fallback ?? (await readSettings(env, accountAlias)).sharedPoolFallback);
  return routeWith(accountAlias, job, own, mayFallBack, now);
}

const wantedLocation = (job: RoutableJob) => [job.location, ...job.hostLocations].map((l) => l?.trim()).find((l) => !!l);

/**
 * `routeExecution`'s rule on answers already read (the start reads them in one batch with the job
 * and the settings). `own` may be null only when the job names a location.
 */
export function routeWith(accountAlias: string, job: RoutableJob, own: OwnAgents | null, mayFallBack: boolean, now: number): string {
  const wanted = wantedLocation(job);
  if (wanted) return dispatcherKey(accountAlias, wanted);
  if (!own) throw new Error("routing a job without a location needs the account's agents");
  if (isOnline(own.defaultLastSeen, now)) return dispatcherKey(accountAlias, null);
  if (!own.any) return dispatcherKey(null, null);
  return mayFallBack ? dispatcherKey(null, null) : dispatcherKey(accountAlias, null);
}

/** The dispatcher an agent polls: its account's (or the shared pool's) queue for its location. */
export function agentDispatcherKey(agent: { account_alias: string | null; location: string | null }): string {
  return dispatcherKey(agent.account_alias, agent.location);
}

export function dispatcherStub(env: Env, key: string) {
  return env.DISPATCHER.get(env.DISPATCHER.idFromName(key));
}
