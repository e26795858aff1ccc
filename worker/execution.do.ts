import { DurableObject } from "cloudflare:workers";

/** One per execution: the state machine, lease, deadlines and event log (see the executions issue). */
export class Execution extends DurableObject<Env> {}
