import { app } from "./app";
import { onQueue } from "./callbacks";
import { onCron } from "./cron";

export { Execution } from "./execution/execution.do";
export { Dispatcher } from "./dispatcher/dispatcher.do";
export { LoginThrottle } from "./login-throttle.do";

export default {
  fetch: app.fetch,
  // Every minute: fire due schedules and sweep missed lease alarms (worker/cron.ts).
  scheduled: onCron,
  // Webhook deliveries, and their dead letters (worker/callbacks.ts).
  queue: (batch, env) => onQueue(batch, env),
} satisfies ExportedHandler<Env>;
