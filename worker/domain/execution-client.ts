import { settle } from "../lib/problem";
import type { ExecutionRpc } from "./contracts";

/**
 * The Execution object of `executionId`, as the Worker calls it: a refusal it answers (an
 * Outcome) comes back as the ProblemError it was, so `onError` maps it like any other.
 */
export function executionClient(env: Pick<Env, "EXECUTION">, executionId: string) {
  // An RPC answer is a structured clone of what the method returned: the interface's signatures
  // describe it better than the stub's mapped types (which turn `unknown` fields into `never`).
  const s = env.EXECUTION.get(env.EXECUTION.idFromName(executionId)) as unknown as ExecutionRpc;
  return {
    init: (...a: Parameters<ExecutionRpc["init"]>) => s.init(...a),
    view: async (...a: Parameters<ExecutionRpc["view"]>) => settle(await s.view(...a)),
    stop: async (...a: Parameters<ExecutionRpc["stop"]>) => settle(await s.stop(...a)),
    kill: async (...a: Parameters<ExecutionRpc["kill"]>) => settle(await s.kill(...a)),
    restart: async (...a: Parameters<ExecutionRpc["restart"]>) => settle(await s.restart(...a)),
    events: async (...a: Parameters<ExecutionRpc["events"]>) => settle(await s.events(...a)),
    logChunk: async (...a: Parameters<ExecutionRpc["logChunk"]>) => settle(await s.logChunk(...a)),
    eventCount: () => s.eventCount(),
    grantLease: (...a: Parameters<ExecutionRpc["grantLease"]>) => s.grantLease(...a),
    heartbeat: async (...a: Parameters<ExecutionRpc["heartbeat"]>) => settle(await s.heartbeat(...a)),
    report: async (...a: Parameters<ExecutionRpc["report"]>) => settle(await s.report(...a)),
    /**
     * An agent's batch. The usual one (in order, no stats) crosses to the object as text: cheaper
     * than a copy of the array, and the object can store it in one statement.
     */
    upload: async (agentId: string, upload: Parameters<ExecutionRpc["uploadEvents"]>[1]) => {
      const { events, ...ref } = upload;
      const first = events[0]?.seq ?? 0;
      const inOrder = events.length > 0 && events.every((e, i) => e.seq === first + i && e.event_type !== "playbook_on_stats");
      return settle(
        await (inOrder ? s.uploadEventRun(agentId, ref, { json: JSON.stringify(events), first, count: events.length }) : s.uploadEvents(agentId, upload)),
      );
    },
    uploadEvents: async (...a: Parameters<ExecutionRpc["uploadEvents"]>) => settle(await s.uploadEvents(...a)),
    uploadEventRun: async (...a: Parameters<ExecutionRpc["uploadEventRun"]>) => settle(await s.uploadEventRun(...a)),
    release: async (...a: Parameters<ExecutionRpc["release"]>) => settle(await s.release(...a)),
    agentRevoked: (...a: Parameters<ExecutionRpc["agentRevoked"]>) => s.agentRevoked(...a),
    waiting: (...a: Parameters<ExecutionRpc["waiting"]>) => s.waiting(...a),
    sweep: () => s.sweep(),
    webhookContent: (...a: Parameters<ExecutionRpc["webhookContent"]>) => s.webhookContent(...a),
  };
}
