import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { playbookJob } from "./jobs-fixtures";

/** Who may read the audit log: the account's admins (and operators); nobody else learns anything from it. */
const A = "audit-sec";
const B = "audit-other";

describe("GET /audit/{alias} (security)", () => {
  it("is for admins only: a viewer and a user get 403, another account's admin 404, no token 401", async () => {
    expect((await api("POST", `/jobs/${A}`, { token: await token([A], "user"), body: playbookJob() })).status).toBe(200);
    const path = `/audit/${A}`;
    expect((await api("GET", path, { token: await token([A], "admin") })).json.totalSize).toBe(1);
    expect((await api("GET", path, { token: await token("*", "admin") })).status).toBe(200);
    for (const role of ["viewer", "user"] as const) {
      const r = await api("GET", path, { token: await token([A], role) });
      expect(r.status, role).toBe(403);
      expect(r.json.detail).toContain("needs 'admin'");
      expect(r.text).not.toContain("job.created");
    }
    const foreign = await api("GET", path, { token: await token([B], "admin") });
    expect(foreign.status).toBe(404);
    expect(foreign.text).not.toContain("job.created");
    expect((await api("GET", path, { token: null })).status).toBe(401);
    // Another account's log says nothing of this one.
    expect((await api("GET", `/audit/${B}`, { token: await token([B], "admin") })).json.totalSize).toBe(0);
  });

  it("the log of what belongs to no account is for operators only (404 to anyone else)", async () => {
    for (const t of [await token([A], "admin"), await token([A], "viewer")]) expect((await api("GET", "/audit/~shared", { token: t })).status).toBe(404);
    expect((await api("GET", "/audit/~shared", { token: await token("*", "viewer") })).status).toBe(403);
    expect((await api("GET", "/audit/~shared", { token: await token("*", "admin") })).status).toBe(200);
  });

  it("bad filters are a 400 naming the parameter (after the access check)", async () => {
    const admin = await token([A], "admin");
    for (const [q, field] of [
      ["resource=nope", "resource"],
      ["resource=job/has space", "resource"],
      ["resource=job/", "resource"],
      ["since=-1", "since"],
      ["since=soon", "since"],
      ["size=101", "size"],
    ]) {
      const r = await api("GET", `/audit/${A}?${q}`, { token: admin });
      expect(r.status, q).toBe(400);
      expect(
        r.json.errors.map((e: { field: string }) => e.field),
        q,
      ).toEqual([field]);
    }
    expect((await api("GET", `/audit/${A}?resource=nope`, { token: await token([A], "user") })).status).toBe(403);
  });
});
