import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { call, held, lease, newAgent, newJob } from "./agent-fixtures";

/** The account inventory: stored whole, answered whole, and handed to dynamic-inventory jobs in their lease. */
const HOSTS = [
  { id: "web1", groups: ["web", "prod"], hostVars: { ansible_host: "10.0.0.1", http_port: 8080 } },
  { id: "web2", groups: ["web"] },
  { id: "db1", groups: ["db", "prod"], hostVars: { ansible_host: "10.0.0.9", tuning: { shared_buffers: "1GB" } } },
  { id: "bastion" },
];
/** As answered: every host with `groups` and `hostVars`, in the order given. */
const STORED = HOSTS.map((h) => ({ groups: [], hostVars: {}, ...h }));

async function putInventory(alias: string, hosts: unknown[]) {
  const r = await api("PUT", `/inventory/${alias}`, { token: await token([alias], "user"), body: { hosts } });
  expect(r.status, r.text).toBe(200);
  return r.json;
}

describe("inventory API (happy)", () => {
  it("an account that never stored one has an empty inventory", async () => {
    const r = await api("GET", "/inventory/fresh", { token: await token(["fresh"], "viewer") });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ hosts: [] });
  });

  it("PUT stores the inventory whole and answers it as stored; GET answers the same", async () => {
    expect(await putInventory("inv", HOSTS)).toEqual({ hosts: STORED });
    const r = await api("GET", "/inventory/inv", { token: await token(["inv"], "viewer") });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ hosts: STORED });
  });

  it("a second PUT replaces the whole inventory; an empty list empties it", async () => {
    await putInventory("repl", HOSTS);
    await putInventory("repl", [{ id: "only", groups: ["solo"] }]);
    expect((await api("GET", "/inventory/repl", { token: await token(["repl"], "viewer") })).json).toEqual({
      hosts: [{ id: "only", groups: ["solo"], hostVars: {} }],
    });
    await putInventory("repl", []);
    expect((await api("GET", "/inventory/repl", { token: await token(["repl"], "viewer") })).json).toEqual({ hosts: [] });
  });

  it("takes what it answered back (GET, change, PUT) and null groups/hostVars as absent", async () => {
    await putInventory("rt", HOSTS);
    const read = (await api("GET", "/inventory/rt", { token: await token(["rt"], "viewer") })).json;
    read.hosts.push({ id: "new1", groups: null, hostVars: null });
    expect(await putInventory("rt", read.hosts)).toEqual({ hosts: [...STORED, { id: "new1", groups: [], hostVars: {} }] });
  });

  it("accepts group names Ansible accepts and 10,000 hosts, and leases them (timings printed, not asserted)", async () => {
    const alias = "big";
    const hosts = Array.from({ length: 10_000 }, (_, i) => ({
      id: `h${i}.example.com`,
      groups: ["_edge", `Rack_${i % 40}`],
      hostVars: { ansible_host: `10.1.${i >> 8}.${i & 255}` },
    }));
    const ms = (t0: number) => Math.round(performance.now() - t0);
    let t0 = performance.now();
    const stored = await putInventory(alias, hosts);
    const put = ms(t0);
    expect(stored.hosts).toHaveLength(10_000);
    t0 = performance.now();
    const r = await api("GET", `/inventory/${alias}`, { token: await token([alias], "viewer") });
    const get = ms(t0);
    expect(r.json.hosts[9_999]).toEqual({ id: "h9999.example.com", groups: ["_edge", "Rack_39"], hostVars: { ansible_host: "10.1.39.15" } });

    const agent = await newAgent(alias);
    const job = await newJob(alias, { useDynamicInventory: true, hosts: [] });
    expect((await api("POST", `/jobs/${alias}/${job}/start`, { token: await token([alias], "user") })).status).toBe(200);
    t0 = performance.now();
    const l = await lease(agent);
    const leased = ms(t0);
    expect(l.json.inventory.hosts).toHaveLength(10_000);
    console.log(`inventory of 10,000 hosts (${r.text.length} bytes): PUT ${put} ms, GET ${get} ms, lease carrying it ${leased} ms`);
  });

  it("is published in /openapi.json from the same schema", async () => {
    const doc = (await api("GET", "/openapi.json", { token: null })).json;
    const path = doc.paths["/inventory/{alias}"];
    expect(Object.keys(path).sort()).toEqual(["get", "put"]);
    expect(path.put.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/Inventory");
    expect(path.get.responses["200"].content["application/json"].schema.$ref).toBe("#/components/schemas/Inventory");
    expect(doc.components.schemas.Inventory.properties.hosts.maxItems).toBe(10_000);
  });
});

describe("the lease of a job (agent protocol)", () => {
  it("a dynamic-inventory job's lease carries the account's hosts and groups; a static job's carries null", async () => {
    const alias = "dyn";
    await putInventory(alias, HOSTS);
    const agent = await newAgent(alias);
    const user = await token([alias], "user");

    const dynamic = await newJob(alias, { useDynamicInventory: true, hosts: [] });
    const started = await api("POST", `/jobs/${alias}/${dynamic}/start`, { token: user });
    expect(started.status).toBe(200);
    const l = await lease(agent);
    expect(l.status).toBe(200);
    expect(l.json.executionId).toBe(started.json.execution_id);
    expect(l.json.job.useDynamicInventory).toBe(true);
    expect(l.json.inventory).toEqual({ hosts: STORED });
    expect(l.json.limit).toBeNull();

    const fixed = await newJob(alias); // hosts: [web1]
    expect((await api("POST", `/jobs/${alias}/${fixed}/start`, { token: user })).status).toBe(200);
    const s = await lease(agent);
    expect(s.status).toBe(200);
    expect(s.json.job.useDynamicInventory).toBe(false);
    expect(s.json.job.hosts.map((h: { id: string }) => h.id)).toEqual(["web1"]);
    expect(s.json.inventory).toBeNull();
  });

  it("a restart runs on the inventory as it is then, still limited by host id to the hosts that failed", async () => {
    const alias = "dyn-restart";
    await putInventory(alias, HOSTS);
    const agent = await newAgent(alias);
    const user = await token([alias], "user");
    const job = await newJob(alias, { useDynamicInventory: true, hosts: [] });
    const id = (await api("POST", `/jobs/${alias}/${job}/start`, { token: user })).json.execution_id;
    expect((await lease(agent)).json.executionId).toBe(id);
    const status = (body: Record<string, unknown>) => call(agent, "POST", `/agent/executions/${id}/status`, { ...held(id), ...body });
    expect((await status({ status: "RUNNING" })).status).toBe(200);
    expect((await status({ status: "FAILURE", failedHosts: ["db1", "web2"] })).status).toBe(200);

    // The inventory changes between the runs: db1's vars change, web2 leaves, web3 arrives.
    const now = [
      { id: "db1", groups: ["db"], hostVars: { ansible_host: "10.0.0.10" } },
      { id: "web1", groups: ["web"] },
      { id: "web3", groups: ["web"] },
    ];
    await putInventory(alias, now);
    const r = await api("POST", `/jobs/${alias}/${job}/executions/${id}/restart`, { token: user });
    expect(r.status, r.text).toBe(200);
    const again = await lease(agent);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ executionId: id, attempt: 2, limit: ["db1", "web2"] });
    expect(again.json.inventory).toEqual({ hosts: now.map((h) => ({ hostVars: {}, ...h })) });
  });
});
