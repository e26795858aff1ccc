import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";

/** GET/PUT /accounts/{alias}/settings: defaults, partial updates, validation naming the field, and who may. */
const path = (alias: string) => `/accounts/${alias}/settings`;

describe("account settings", () => {
  it("answers the defaults until changed; a PUT keeps what it leaves out and ignores accountAlias", async () => {
    const admin = await token(["set1"], "admin");
    expect((await api("GET", path("set1"), { token: admin })).json).toEqual({ accountAlias: "set1", pendingTimeoutMinutes: 60, sharedPoolFallback: false });
    const put = await api("PUT", path("set1"), { token: admin, body: { pendingTimeoutMinutes: 15 } });
    expect(put.status).toBe(200);
    expect(put.json).toEqual({ accountAlias: "set1", pendingTimeoutMinutes: 15, sharedPoolFallback: false });
    const back = await api("PUT", path("set1"), { token: admin, body: { ...put.json, accountAlias: "someone-else", sharedPoolFallback: true } });
    expect(back.json).toEqual({ accountAlias: "set1", pendingTimeoutMinutes: 15, sharedPoolFallback: true });
    expect((await api("GET", path("set1"), { token: admin })).json).toEqual(back.json);
  });

  it("refuses bad values with a 400 naming each field", async () => {
    const admin = await token(["set2"], "admin");
    for (const [body, fields] of [
      [{ pendingTimeoutMinutes: 0 }, ["pendingTimeoutMinutes"]],
      [{ pendingTimeoutMinutes: 1.5 }, ["pendingTimeoutMinutes"]],
      [{ pendingTimeoutMinutes: 7 * 24 * 60 + 1 }, ["pendingTimeoutMinutes"]],
      [{ pendingTimeoutMinutes: "60" }, ["pendingTimeoutMinutes"]],
      [{ sharedPoolFallback: "yes" }, ["sharedPoolFallback"]],
      [{ pendingTimeoutMinutes: -1, sharedPoolFallback: 1 }, ["pendingTimeoutMinutes", "sharedPoolFallback"]],
    ] as const) {
      const r = await api("PUT", path("set2"), { token: admin, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.errors.map((e: { field: string }) => e.field).sort()).toEqual([...fields]);
    }
    expect((await api("PUT", path("set2"), { token: admin, body: "[" })).status).toBe(400);
    expect((await api("GET", path("set2"), { token: admin })).json.pendingTimeoutMinutes).toBe(60); // nothing stored
  });

  it("viewers read, only admins write, another account's settings do not exist", async () => {
    expect((await api("GET", path("set3"), { token: await token(["set3"], "viewer") })).status).toBe(200);
    expect((await api("PUT", path("set3"), { token: await token(["set3"], "viewer"), body: { sharedPoolFallback: true } })).status).toBe(403);
    expect((await api("PUT", path("set3"), { token: await token(["set3"], "user"), body: { sharedPoolFallback: true } })).status).toBe(403);
    expect((await api("PUT", path("set3"), { token: await token(["set3"], "admin"), body: { sharedPoolFallback: true } })).status).toBe(200);
    expect((await api("GET", path("set3"), { token: await token(["other"], "admin") })).status).toBe(404);
    expect((await api("PUT", path("set3"), { token: await token(["other"], "admin"), body: { sharedPoolFallback: false } })).status).toBe(404);
    expect((await api("GET", path("set3"), { token: null })).status).toBe(401);
    expect((await api("GET", path("set3"), { token: await token(["set3"], "viewer") })).json.sharedPoolFallback).toBe(true);
  });
});
