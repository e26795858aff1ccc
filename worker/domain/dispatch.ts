import { hasLiveAgentIn } from "../db/agents";
import { dispatcherKey } from "./contracts";

/** What routing needs of a job (a subset of `getJobSummary`'s answer). */
export interface RoutableJob {
  location: string | null;
  /** The hosts' `rnr_location` values, in host order. */
  hostLocations: string[];
}

/**
 * Which dispatcher serves an execution of this job: the job's `location` (else the first host's
 * `rnr_location`) names a location of the account's own agents, and the work waits there even if
 * no agent of that location is registered yet (only those agents can reach that network). Without
 * a location, the account's default-location agents serve it if it has any live ones, else the
 * shared pool does.
 */
export async function routeExecution(env: Env, accountAlias: string, job: RoutableJob): Promise<string> {
  const wanted = [job.location, ...job.hostLocations].map((l) => l?.trim()).find((l) => !!l);
  if (wanted) return dispatcherKey(accountAlias, wanted);
  if (await hasLiveAgentIn(env.DB, accountAlias, null)) return dispatcherKey(accountAlias, null);
  return dispatcherKey(null, null);
}

/** The dispatcher an agent polls: its account's (or the shared pool's) queue for its location. */
export function agentDispatcherKey(agent: { account_alias: string | null; location: string | null }): string {
  return dispatcherKey(agent.account_alias, agent.location);
}

export function dispatcherStub(env: Env, key: string) {
  return env.DISPATCHER.get(env.DISPATCHER.idFromName(key));
}
