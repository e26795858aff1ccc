// `runner-agent install-service` (a unit systemd accepts) and the opt-in metrics (--metrics-listen).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../src/cli.ts";
import { resolveSettings, writeConfigFile } from "../src/config.ts";
import { AgentMetrics } from "../src/metrics.ts";

const dir = mkdtempSync(join(tmpdir(), "rnr-svc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function io(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), env }, out: () => out.join(""), err: () => err.join("") };
}

const hasSystemdAnalyze = spawnSync("sh", ["-c", "command -v systemd-analyze"]).status === 0;

describe("runner-agent install-service", () => {
  it("prints a unit that runs the agent with the sandbox, its config by environment and its work directory, restarting on failure", async () => {
    const config = join(dir, "agent.json");
    await writeConfigFile(config, { url: "https://runner.example.com", agentId: "a1", credential: "rac_x", accountAlias: "acme", shared: false });
    const t = io({ RUNNER_CONFIG: config });
    expect(await main(["install-service"], t.io)).toBe(0);
    const unit = t.out();
    expect(unit).toContain(`Environment=RUNNER_CONFIG=${config}`);
    expect(unit).toMatch(
      new RegExp(
        `^ExecStart=${process.execPath.replace(/[/.]/g, "\\$&")} /\\S+/bin/runner-agent\\.mjs run --isolation sandbox --state-dir /var/lib/runner-agent$`,
        "m",
      ),
    );
    expect(unit).toContain("StateDirectory=runner-agent");
    expect(unit).toContain("Restart=on-failure");
    expect(unit).toContain("RestartPreventExitStatus=2 3 6");
    expect(unit).toContain("KillMode=mixed");
    expect(unit).not.toContain("User=");
    expect(unit).not.toContain("rac_x"); // the credential stays in the config file
    expect(unit).toContain("WantedBy=multi-user.target");
  });

  it("writes a unit for a dedicated user to --output, with metrics; systemd-analyze verify accepts it", async () => {
    const config = join(dir, "acct.json");
    await writeConfigFile(config, { url: "https://runner.example.com", agentId: "a2", credential: "rac_y", accountAlias: "acme", shared: false });
    const path = join(dir, "runner-agent.service");
    const t = io({ RUNNER_CONFIG: config });
    expect(
      await main(
        ["install-service", "--user", "nobody", "--metrics-listen", "127.0.0.1:9464", "--concurrency", "2", "--shutdown-grace", "30", "--output", path],
        t.io,
      ),
    ).toBe(0);
    const unit = readFileSync(path, "utf8");
    expect(unit).toContain("User=nobody");
    expect(unit).toMatch(/run --isolation sandbox --state-dir \/var\/lib\/runner-agent --concurrency 2 --metrics-listen 127\.0\.0\.1:9464$/m);
    expect(unit).toContain("TimeoutStopSec=90");
    expect(t.err()).toContain("systemctl daemon-reload && systemctl enable --now runner-agent");
    if (!hasSystemdAnalyze) return; // CI installs systemd (.ci/run); elsewhere the content checks above stand
    const v = spawnSync("systemd-analyze", ["verify", path], { encoding: "utf8" });
    expect(v.status, v.stderr).toBe(0);
    // A control: verify does refuse a broken unit.
    const broken = join(dir, "broken.service");
    const b = spawnSync("sh", ["-c", `sed 's|^ExecStart=/|ExecStart=|' ${path} > ${broken} && systemd-analyze verify ${broken}`], { encoding: "utf8" });
    expect(b.status).not.toBe(0);
  });

  it("refuses --user for a shared-pool agent (it must run as root), and bad values", async () => {
    const config = join(dir, "shared.json");
    await writeConfigFile(config, { url: "https://runner.example.com", agentId: "a3", credential: "rac_z", accountAlias: null, shared: true });
    const t = io({ RUNNER_CONFIG: config });
    expect(await main(["install-service", "--user", "runner"], t.io)).toBe(2);
    expect(t.err()).toContain("must run as root");
    const u = io({ RUNNER_CONFIG: config });
    expect(await main(["install-service", "--isolation", "chroot", "--metrics-listen", "9464"], u.io)).toBe(2);
    expect(u.err()).toContain("--isolation must be one of sandbox, uid, none");
    expect(u.err()).toContain("--metrics-listen must be HOST:PORT");
  });
});

describe("metrics", () => {
  it("--metrics-listen is a setting like the others (flag, RUNNER_METRICS_LISTEN, file), validated", () => {
    expect(resolveSettings(["metricsListen"], {}, { RUNNER_METRICS_LISTEN: "127.0.0.1:9464" }, {}).metricsListen).toBe("127.0.0.1:9464");
    expect(resolveSettings(["metricsListen"], { metricsListen: "[::1]:9000" }, {}, { metricsListen: ":1" }).metricsListen).toBe("[::1]:9000");
    expect(resolveSettings(["metricsListen"], {}, {}, {}).metricsListen).toBeUndefined();
    expect(() => resolveSettings(["metricsListen"], { metricsListen: "127.0.0.1:99999" }, {}, {})).toThrow(/HOST:PORT/);
  });

  it("counts leases, poll errors, events and the last contact from the client's calls, and serves them as Prometheus text", async () => {
    let running = 2;
    const m = new AgentMetrics({ running: () => running, uploadBacklog: () => 7 }, { defaultMetrics: false });
    const answers: (Response | Error)[] = [
      new Response(JSON.stringify({ executionId: "e1" }), { status: 200 }),
      new Response(null, { status: 204 }),
      new Response("{}", { status: 503 }),
      new TypeError("fetch failed"),
      new Response(JSON.stringify({ acceptedThrough: 3 }), { status: 200 }),
      new Response(JSON.stringify({ status: "SUCCESS", acceptedThrough: 5 }), { status: 200 }),
    ];
    const fetch = m.instrument(async () => {
      const a = answers.shift()!;
      if (a instanceof Error) throw a;
      return a;
    });
    const lease = (): Promise<unknown> => fetch(new URL("http://api/agent/lease"), { method: "POST", body: "{}" });
    await lease();
    await lease();
    await lease();
    await expect(lease()).rejects.toThrow("fetch failed");
    await fetch(new URL("http://api/agent/executions/e1/events"), { method: "POST", body: JSON.stringify({ attempt: 1, leaseId: "l", events: [{}, {}, {}] }) });
    // The final status with the run's last events counts them too.
    await fetch(new URL("http://api/agent/executions/e1/status"), {
      method: "POST",
      body: JSON.stringify({ attempt: 1, leaseId: "l", status: "SUCCESS", events: [{}, {}] }),
    });
    running = 1;

    const addr = await m.listen("127.0.0.1:0");
    try {
      const r = await globalThis.fetch(`http://127.0.0.1:${addr.port}/metrics`);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toContain("text/plain");
      const families = new Map(
        (parsePrometheusTextFormat(await r.text()) as { name: string; type: string; metrics: { value: string; labels?: Record<string, string> }[] }[]).map(
          (f) => [f.name, f],
        ),
      );
      const v = (name: string) => Number(families.get(name)?.metrics[0]?.value);
      expect(v("runner_agent_leases_total")).toBe(1);
      expect(v("runner_agent_lease_poll_errors_total")).toBe(2);
      expect(v("runner_agent_events_sent_total")).toBe(5);
      expect(v("runner_agent_running_executions")).toBe(1);
      expect(v("runner_agent_upload_backlog_events")).toBe(7);
      expect(v("runner_agent_last_contact_timestamp_seconds")).toBeGreaterThan(Date.now() / 1000 - 10);
      expect(families.get("runner_agent_leases_total")!.type).toBe("COUNTER");
      expect((await globalThis.fetch(`http://127.0.0.1:${addr.port}/other`)).status).toBe(404);
    } finally {
      await m.close();
    }
  });
});
