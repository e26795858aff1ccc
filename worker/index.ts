import { app } from "./app";
import { sweepExpiredLeases } from "./domain/executions";

export { Execution } from "./execution/execution.do";
export { Dispatcher } from "./dispatcher/dispatcher.do";
export { LoginThrottle } from "./login-throttle.do";

export default {
  fetch: app.fetch,
  async scheduled(_controller, env, ctx) {
    // Filled by the schedules issue: fire due schedules. Missed lease/TTL alarms are swept here.
    ctx.waitUntil(sweepExpiredLeases(env));
  },
  async queue(batch, _env) {
    // Filled by the callbacks issue: deliver webhooks.
    batch.ackAll();
  },
} satisfies ExportedHandler<Env>;
