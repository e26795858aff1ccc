import { createRoute, z } from "@hono/zod-openapi";
import { executionsByStatus, liveAgentCounts, pendingQueues } from "../db/metrics";
import { ONLINE_WINDOW_MS } from "../domain/agents";
import { requireAuth } from "../lib/auth";
import { router } from "../lib/hono";
import { forbidden, problemResponses } from "../lib/problem";
import { EXECUTION_STATUSES } from "../schemas/execution";

/**
 * GET /metrics: the service's state in the Prometheus text format (0.0.4), for operators only
 * (a token for every account, of any role): it names every account. Read from D1 at each scrape.
 */
export const metrics = router();

metrics.openapi(
  createRoute({
    method: "get",
    path: "/metrics",
    tags: ["Service"],
    summary: "Operators: Prometheus metrics (executions by status, pending work per account and location, agents online)",
    middleware: [
      requireAuth,
      async (c, next) => {
        if (c.var.principal.accounts !== "*") throw forbidden('The metrics are for operators: a token for every account ("*").');
        await next();
      },
    ] as const,
    responses: {
      200: { description: "Prometheus text exposition format 0.0.4", content: { "text/plain": { schema: z.string() } } },
      ...problemResponses(401, 403),
    },
  }),
  async (c) => {
    const now = Date.now();
    const [byStatus, queues, agents] = await Promise.all([
      executionsByStatus(c.env.DB),
      pendingQueues(c.env.DB),
      liveAgentCounts(c.env.DB, now - ONLINE_WINDOW_MS),
    ]);
    const out = new Exposition();

    out.family("runner_executions", "gauge", "Executions in the index by status");
    for (const s of EXECUTION_STATUSES) out.sample("runner_executions", { status: s }, byStatus.get(s) ?? 0);

    out.family(
      "runner_executions_pending",
      "gauge",
      'Pending executions by account and the location they wait for ("": the account\'s default agents or the shared pool)',
    );
    for (const q of queues) out.sample("runner_executions_pending", { account: q.account, location: q.location }, q.pending);
    out.family("runner_executions_pending_oldest_age_seconds", "gauge", "How long the oldest pending execution of each account and location has waited");
    for (const q of queues) out.sample("runner_executions_pending_oldest_age_seconds", { account: q.account, location: q.location }, age(now, q.oldestSince));
    out.family(
      "runner_executions_oldest_pending_age_seconds",
      "gauge",
      "How long the oldest pending execution of the whole service has waited (0: none is pending)",
    );
    out.sample("runner_executions_oldest_pending_age_seconds", {}, queues.length ? Math.max(...queues.map((q) => age(now, q.oldestSince))) : 0);

    out.family(
      "runner_agents",
      "gauge",
      `Live (not revoked) agents by account ("~shared": the shared pool), location and state (online: seen within ${ONLINE_WINDOW_MS / 1000} s)`,
    );
    for (const a of agents) {
      const labels = { account: a.account ?? "~shared", location: a.location ?? "" };
      out.sample("runner_agents", { ...labels, state: "online" }, a.online);
      out.sample("runner_agents", { ...labels, state: "offline" }, a.total - a.online);
    }
    out.family("runner_agents_online", "gauge", "Live agents seen recently, over every account and the shared pool");
    out.sample(
      "runner_agents_online",
      {},
      agents.reduce((n, a) => n + a.online, 0),
    );
    out.family("runner_agents_offline", "gauge", "Live agents not seen recently, over every account and the shared pool");
    out.sample(
      "runner_agents_offline",
      {},
      agents.reduce((n, a) => n + a.total - a.online, 0),
    );

    return c.text(out.text(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "cache-control": "no-store" });
  },
);

const age = (now: number, since: number) => Math.max(0, (now - since) / 1000);

/** Prometheus text format, written by hand (the format is small; no client library in the Worker). */
class Exposition {
  private lines: string[] = [];

  family(name: string, type: "gauge" | "counter", help: string): void {
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
    this.lines.push(`${name}${l.length ? `{${l.join(",")}}` : ""} ${Number.isFinite(value) ? value : 0}`);
  }

  text(): string {
    return this.lines.join("\n") + "\n";
  }
}
