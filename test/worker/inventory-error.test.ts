import { beforeAll, describe, expect, it } from "vitest";
import { api, token } from "./helpers";

/** Bad inventories: one 400 naming every bad field, and the stored inventory is left as it was. */
const ALIAS = "inv-err";
const KEPT = { hosts: [{ id: "keep1", groups: ["kept"], hostVars: { a: 1 } }] };
let user: string;

const fields = (r: { json: { errors?: { field: string }[] } }) => (r.json.errors ?? []).map((e) => e.field).sort();
const put = (body: unknown, headers?: Record<string, string>) => api("PUT", `/inventory/${ALIAS}`, { token: user, body, headers });

beforeAll(async () => {
  user = await token([ALIAS], "user");
  expect((await put(KEPT)).status).toBe(200);
});

async function expectUnchanged() {
  expect((await api("GET", `/inventory/${ALIAS}`, { token: user })).json).toEqual(KEPT);
}

describe("inventory API (bad input)", () => {
  it("names every bad field of a body in one 400", async () => {
    const r = await put({
      hosts: [
        { id: "" }, // 0: empty id
        { id: "a b" }, // 1: whitespace
        { id: "web1", groups: ["1st", "all", "ungrouped", "ok", "ok", "dash-ed", ""] }, // 2: bad, implicit, repeated, bad, bad
        { id: "web1" }, // 3: repeats host 2's id
        { id: "x", hostVars: [] }, // 4: hostVars not an object
        { id: "y", hostVars: "a=1" }, // 5
        { id: 5 }, // 6: id not a string
        { id: "z", groups: "web" }, // 7: groups not a list
        { id: "q", hostVars: { rnr_location: "" } }, // 8: rnr_location routes work: a location name
        { groups: ["web"] }, // 9: no id
        "web9", // 10: not an object
      ],
    });
    expect(r.status).toBe(400);
    expect(r.headers.get("content-type")).toContain("application/problem+json");
    expect(fields(r)).toEqual(
      [
        "hosts.0.id",
        "hosts.1.id",
        "hosts.2.groups.0",
        "hosts.2.groups.1",
        "hosts.2.groups.2",
        "hosts.2.groups.4",
        "hosts.2.groups.5",
        "hosts.2.groups.6",
        "hosts.3.id",
        "hosts.4.hostVars",
        "hosts.5.hostVars",
        "hosts.6.id",
        "hosts.7.groups",
        "hosts.8.hostVars.rnr_location",
        "hosts.9.id",
        "hosts.10",
      ].sort(),
    );
    const byField = Object.fromEntries((r.json.errors as { field: string; message: string }[]).map((e) => [e.field, e.message]));
    expect(byField["hosts.3.id"]).toContain("duplicates");
    expect(byField["hosts.2.groups.4"]).toContain("duplicates");
    expect(byField["hosts.2.groups.1"]).toContain("implicit");
    expect(byField["hosts.2.groups.0"]).toContain("group name");
    await expectUnchanged();
  });

  it("needs a body that is an object with a list of hosts", async () => {
    for (const [body, field] of [
      [{}, "hosts"],
      [{ hosts: null }, "hosts"],
      [{ hosts: {} }, "hosts"],
      [{ hosts: "web1,web2" }, "hosts"],
      [[], "body"],
      ["just text", "body"],
      [null, "body"],
    ] as const) {
      const r = await put(JSON.stringify(body));
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(fields(r), JSON.stringify(body)).toEqual([field]);
    }
    await expectUnchanged();
  });

  it("takes at most 10,000 hosts", async () => {
    const r = await put({ hosts: Array.from({ length: 10_001 }, (_, i) => ({ id: `h${i}` })) });
    expect(r.status).toBe(400);
    expect(fields(r)).toEqual(["hosts"]);
    expect(r.json.errors[0].message).toContain("10000");
    await expectUnchanged();
  });

  it("refuses host vars nested deeper than 32 levels", async () => {
    let deep: unknown = "bottom";
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const r = await put({ hosts: [{ id: "deep", hostVars: deep }] });
    expect(r.status).toBe(400);
    expect(fields(r)).toEqual(["hosts.0.hostVars"]);
    await expectUnchanged();
  });

  it("answers bad JSON 400, a body that is not JSON 415, a body over 1 MiB 413", async () => {
    const bad = await put('{"hosts": [');
    expect(bad.status).toBe(400);
    expect(fields(bad)).toEqual(["body"]);
    expect((await put("hosts=web1", { "content-type": "application/x-www-form-urlencoded" })).status).toBe(415);
    expect((await put(JSON.stringify(KEPT), { "content-type": "text/plain" })).status).toBe(415);
    const huge = { hosts: [{ id: "big", hostVars: { blob: "x".repeat(1024 * 1024) } }] };
    expect((await put(huge)).status).toBe(413);
    expect((await api("PUT", `/inventory/${ALIAS}`, { token: user })).status).toBe(400); // no body at all
    await expectUnchanged();
  });
});
