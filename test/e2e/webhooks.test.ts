// End to end: a real run's webhook deliveries, through wrangler dev's queue, to a receiver on
// 127.0.0.1 (the stack runs with ALLOW_LOOPBACK_HTTP=true), each checked the way the README's
// receiver checks it.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { b64, isTerminal, sleep, Stack } from "./stack";

const A = "e2e-hooks";
let stack: Stack;
let token: string;
let server: Server;
let base: string;
const received: { path: string; headers: Record<string, string | string[] | undefined>; body: string }[] = [];

const LOCAL = [{ id: "localhost", hostVars: { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" } }];
const PLAY =
  "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: say hello\n      ansible.builtin.debug:\n        msg: hello from a webhook run\n    - name: change something\n      ansible.builtin.command: echo changed\n";

/** The README's receiver check: any v1= of the header is the HMAC of "t.body", and t is within 5 minutes. */
function verify(secret: string, header: string, body: string, toleranceS = 300): boolean {
  const parts = header.split(",").map((p) => p.split("=") as [string, string]);
  const t = Number(parts.find(([k]) => k === "t")?.[1]);
  if (!Number.isFinite(t) || Math.abs(Date.now() / 1000 - t) > toleranceS) return false;
  const expected = createHmac("sha256", secret).update(`${t}.${body}`).digest();
  return parts.some(([k, v]) => k === "v1" && v.length === 64 && timingSafeEqual(Buffer.from(v, "hex"), expected));
}

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received.push({ path: req.url ?? "", headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  stack = await new Stack().start();
  token = await stack.token([A]);
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  await new Promise((r) => server?.close(r));
});

describe("webhooks end to end (happy)", () => {
  it("a receiver on 127.0.0.1 gets every delivery of a real run, in sequence, each signed; the final one carries SUCCESS with host stats", async () => {
    const job = await stack.call("POST", `/jobs/${A}`, token, {
      name: "hooked",
      playbook: b64(PLAY),
      hosts: LOCAL,
      callbacks: [
        { url: `${base}/debug`, level: "DEBUG" },
        { url: `${base}/result`, level: "RESULT" },
      ],
    });
    expect(job.status, job.text).toBe(200);
    const started = await stack.call("POST", `/jobs/${A}/${job.json.id}/start`, token, {});
    expect(started.status, started.text).toBe(200);
    const id = started.json.execution_id as string;
    const done = await stack.waitFor(A, job.json.id, id, token, isTerminal);
    expect(done.status).toBe("SUCCESS");

    const events = await stack.call("GET", `/jobs/${A}/${job.json.id}/executions/${id}/events?size=100`, token);
    const total = events.json.totalSize as number;
    expect(total).toBeGreaterThan(8);
    const at = (path: string) => received.filter((r) => r.path === path).map((r) => ({ ...r, json: JSON.parse(r.body) }));
    for (let i = 0; i < 150 && (at("/debug").length < total || at("/result").length < 1); i++) await sleep(200);

    const secret = (await stack.call("GET", `/webhooks/${A}/secret`, token)).json.secret as string;
    const debug = at("/debug").sort((x, y) => x.json.sequence - y.json.sequence);
    expect(debug).toHaveLength(total);
    // In sequence: 1..n, each the next event, with nothing missing or repeated.
    expect(debug.map((d) => d.json.sequence)).toEqual(debug.map((_, i) => i + 1));
    expect(debug.map((d) => d.json.event.sequence)).toEqual(events.json.results.map((e: { sequence: number }) => e.sequence));
    for (const d of debug) {
      expect(verify(secret, String(d.headers["runner-signature"]), d.body)).toBe(true);
      expect(verify("whsec_not-the-secret", String(d.headers["runner-signature"]), d.body)).toBe(false);
      expect(d.headers["runner-delivery"]).toBe(d.json.delivery_id);
      expect(d.headers["runner-event"]).toBe(d.json.event_type);
      expect(d.json).toMatchObject({ account_alias: A, job_id: job.json.id, execution_id: id });
    }
    expect(debug.map((d) => d.json.event_type)).toContain("runner_on_ok");
    expect(debug.at(-1)!.json.event.data.status).toBe("SUCCESS");

    const [result, ...more] = at("/result");
    expect(more).toHaveLength(0);
    expect(verify(secret, String(result!.headers["runner-signature"]), result!.body)).toBe(true);
    expect(result!.json.event).toMatchObject({ event_type: "execution_status", data: { status: "SUCCESS" } });
    expect(result!.json.execution).toMatchObject({ execution_id: id, status: "SUCCESS", failed_hosts: [], trigger: "api", schedule_id: null });
    expect(result!.json.execution.host_stats.localhost).toMatchObject({ ok: 2, changed: 1, failed: 0 });

    // And the API lists them all as delivered on the first attempt.
    const list = await stack.call("GET", `/jobs/${A}/${job.json.id}/executions/${id}/deliveries?size=100`, token);
    expect(list.json.totalSize).toBe(total + 1);
    expect(list.json.results.every((d: { status: string; attempts: number }) => d.status === "delivered" && d.attempts === 1)).toBe(true);
  });
});
