import { Agent } from "./agent-identity/agent.do";
import { app } from "./app";
import { onQueue } from "./callbacks";
import { onCron } from "./cron";
import { Dispatcher } from "./dispatcher/dispatcher.do";
import { Execution } from "./execution/execution.do";
import { meterHook } from "./lib/meter";
import { LoginThrottle } from "./login-throttle.do";

export { Agent, Dispatcher, Execution, LoginThrottle };

/** Counted by the load recorder when `RUNNER_METER=true` (the simulator's wrangler dev only; worker/lib/meter.ts). */
const METERED = { EXECUTION: Execution, DISPATCHER: Dispatcher, LOGIN_THROTTLE: LoginThrottle, AGENT: Agent };

export default {
  fetch: (req, env, ctx) => meterHook(req, env, METERED) ?? app.fetch(req, env, ctx),
  // Every minute: fire due schedules and sweep missed lease alarms (worker/cron.ts).
  scheduled: (controller, env, ctx) => {
    meterHook(null, env, METERED);
    return onCron(controller, env, ctx);
  },
  // Webhook deliveries, and their dead letters (worker/callbacks.ts).
  queue: (batch, env) => {
    meterHook(null, env, METERED);
    return onQueue(batch, env);
  },
} satisfies ExportedHandler<Env>;
