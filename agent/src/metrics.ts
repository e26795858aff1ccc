// Prometheus metrics of one agent, served on an opt-in --metrics-listen address (prom-client's
// text format). The protocol counters are taken from the API client's fetch, so nothing in the
// lease loop or the sessions has to know about them; the gauges read the agent when scraped.
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { parseListen } from "./config.ts";
import { httpFetch, type HttpAnswer, type HttpFetch } from "./http-fetch.ts";

export interface AgentGauges {
  /** Executions this agent holds now. */
  running(): number;
  /** Events produced and not yet accepted by the API, over every running execution. */
  uploadBacklog(): number;
}

const EXECUTION_CALL = /\/agent\/executions\/[^/]+\/(events|status|heartbeat|release)$/;

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly leases: Counter;
  private readonly pollErrors: Counter;
  private readonly events: Counter;
  private readonly requests: Counter;
  private readonly lastContact: Gauge;
  private server: Server | null = null;

  constructor(gauges: AgentGauges, opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    new Gauge({
      name: "runner_agent_running_executions",
      help: "Executions this agent is running now",
      registers,
      collect() {
        this.set(gauges.running());
      },
    });
    new Gauge({
      name: "runner_agent_upload_backlog_events",
      help: "Events produced by running executions and not yet accepted by the API",
      registers,
      collect() {
        this.set(gauges.uploadBacklog());
      },
    });
    this.leases = new Counter({ name: "runner_agent_leases_total", help: "Executions leased from the API", registers });
    this.pollErrors = new Counter({
      name: "runner_agent_lease_poll_errors_total",
      help: "Lease polls that failed (network error, timeout or an error status)",
      registers,
    });
    this.events = new Counter({ name: "runner_agent_events_sent_total", help: "Events the API accepted from this agent", registers });
    this.requests = new Counter({
      name: "runner_agent_api_requests_total",
      help: "Calls to the API by kind and outcome",
      labelNames: ["call", "outcome"],
      registers,
    });
    this.lastContact = new Gauge({
      name: "runner_agent_last_contact_timestamp_seconds",
      help: "When the API last answered this agent with a success (unix seconds; 0: never)",
      registers,
    });
    this.lastContact.set(0);
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: "runner_agent_" });
  }

  /** A fetch that counts the agent protocol's calls: pass it to the ApiClient. */
  instrument(inner: HttpFetch = httpFetch): HttpFetch {
    return async (input, init) => {
      const path = input.pathname;
      const call = path.endsWith("/agent/lease") ? "lease" : path.endsWith("/agent/register") ? "register" : (EXECUTION_CALL.exec(path)?.[1] ?? "other");
      let res: HttpAnswer;
      try {
        res = await inner(input, init);
      } catch (err) {
        // An abort of the long poll at shutdown is not an error of the poll.
        const aborted = init?.signal?.aborted && (init.signal.reason as Error | undefined)?.name !== "TimeoutError";
        if (call === "lease" && !aborted) this.pollErrors.inc();
        this.requests.inc({ call, outcome: aborted ? "aborted" : "network_error" });
        throw err;
      }
      const ok = res.status < 400;
      this.requests.inc({ call, outcome: ok ? "ok" : String(res.status) });
      if (ok) this.lastContact.set(Date.now() / 1000);
      if (call === "lease") {
        if (!ok) this.pollErrors.inc();
        else if (res.status === 200) this.leases.inc();
      } else if ((call === "events" || call === "status") && ok && typeof init?.body === "string") {
        // The final status may carry the run's last events (the lease's reportEvents).
        try {
          const n = (JSON.parse(init.body) as { events?: unknown[] }).events?.length ?? 0;
          this.events.inc(n);
        } catch {
          /* not ours to judge */
        }
      }
      return res;
    };
  }

  /** Serves GET /metrics (and nothing else) on host:port; resolves once listening. */
  async listen(address: string): Promise<{ host: string; port: number }> {
    const { host, port } = parseListen(address);
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD" }).end();
        return;
      }
      if (path !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: the metrics are at /metrics\n");
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": this.registry.contentType }).end(req.method === "HEAD" ? undefined : text),
        (err: Error) => res.writeHead(500, { "content-type": "text/plain" }).end(`${err.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    server.unref();
    this.server = server;
    const a = server.address();
    return typeof a === "object" && a ? { host: a.address, port: a.port } : { host: host ?? "", port };
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
