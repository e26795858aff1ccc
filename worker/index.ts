import { app } from "./app";

export { Execution } from "./execution.do";
export { Dispatcher } from "./dispatcher.do";

export default {
  fetch: app.fetch,
  async scheduled(_controller, _env, _ctx) {
    // Filled by the schedules issue: fire due schedules, sweep missed lease alarms.
  },
  async queue(batch, _env) {
    // Filled by the callbacks issue: deliver webhooks.
    batch.ackAll();
  },
} satisfies ExportedHandler<Env>;
