import { beforeAll, describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { lease, newAgent, newJob } from "./agent-fixtures";

/** Who may read and write an account's inventory, and that no account ever sees another's. */
const OWN = "inv-own";
const OWN_HOSTS = { hosts: [{ id: "own1", groups: ["web"], hostVars: { ansible_host: "10.1.0.1" } }] };
let admin: string;

const read = async () => (await api("GET", `/inventory/${OWN}`, { token: admin })).json;

beforeAll(async () => {
  admin = await token([OWN], "admin");
  expect((await api("PUT", `/inventory/${OWN}`, { token: admin, body: OWN_HOSTS })).status).toBe(200);
});

describe("inventory API (security)", () => {
  it("needs a bearer token; an agent credential is not one", async () => {
    expect((await api("GET", `/inventory/${OWN}`, { token: null })).status).toBe(401);
    expect((await api("PUT", `/inventory/${OWN}`, { token: null, body: { hosts: [] } })).status).toBe(401);
    const agent = await newAgent(OWN);
    expect((await api("GET", `/inventory/${OWN}`, { token: agent.credential })).status).toBe(401);
    expect((await api("PUT", `/inventory/${OWN}`, { token: agent.credential, body: { hosts: [] } })).status).toBe(401);
    expect(await read()).toEqual(OWN_HOSTS);
  });

  it("another account's inventory is a 404 to read and to write, whatever the body", async () => {
    const stranger = await token(["someone-else"], "admin");
    const get = await api("GET", `/inventory/${OWN}`, { token: stranger });
    expect(get.status).toBe(404);
    expect(get.text).not.toContain("own1");
    expect((await api("PUT", `/inventory/${OWN}`, { token: stranger, body: { hosts: [] } })).status).toBe(404);
    // Access is checked before the body: a bad body tells a stranger nothing either.
    expect((await api("PUT", `/inventory/${OWN}`, { token: stranger, body: { hosts: "bad" } })).status).toBe(404);
    expect(await read()).toEqual(OWN_HOSTS);
  });

  it("a viewer reads but may not write; a user writes", async () => {
    const viewer = await token([OWN], "viewer");
    expect((await api("GET", `/inventory/${OWN}`, { token: viewer })).status).toBe(200);
    expect((await api("PUT", `/inventory/${OWN}`, { token: viewer, body: { hosts: [] } })).status).toBe(403);
    expect(await read()).toEqual(OWN_HOSTS);
    const user = await token([OWN], "user");
    expect((await api("PUT", `/inventory/${OWN}`, { token: user, body: OWN_HOSTS })).status).toBe(200);
  });

  it("a malformed alias is a 400", async () => {
    const operator = await token("*", "admin");
    expect((await api("GET", "/inventory/x", { token: operator })).status).toBe(400);
    expect((await api("PUT", `/inventory/${"a".repeat(33)}`, { token: operator, body: { hosts: [] } })).status).toBe(400);
  });

  it("a dynamic-inventory job's lease carries its own account's inventory, never another's", async () => {
    const other = "inv-other";
    expect((await api("PUT", `/inventory/${other}`, { token: await token([other], "user"), body: { hosts: [{ id: "theirs1" }] } })).status).toBe(200);
    const agent = await newAgent(OWN);
    const job = await newJob(OWN, { useDynamicInventory: true, hosts: [] });
    expect((await api("POST", `/jobs/${OWN}/${job}/start`, { token: admin })).status).toBe(200);
    const l = await lease(agent);
    expect(l.status).toBe(200);
    expect(l.json.inventory).toEqual(await read());
    expect(l.text).not.toContain("theirs1");
  });
});
