import { DurableObject } from "cloudflare:workers";

/** One per (account, location) and one for the shared pool: the queue of PENDING executions. */
export class Dispatcher extends DurableObject<Env> {}
