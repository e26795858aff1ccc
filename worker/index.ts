import { app } from "./app";
import { onCron } from "./cron";

export { Execution } from "./execution/execution.do";
export { Dispatcher } from "./dispatcher/dispatcher.do";
export { LoginThrottle } from "./login-throttle.do";

export default {
  fetch: app.fetch,
  // Every minute: fire due schedules and sweep missed lease alarms (worker/cron.ts).
  scheduled: onCron,
  async queue(batch, _env) {
    // Filled by the callbacks issue: deliver webhooks.
    batch.ackAll();
  },
} satisfies ExportedHandler<Env>;
