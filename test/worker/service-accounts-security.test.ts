import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { signToken, verifyToken } from "../../worker/lib/auth";
import { api, token } from "./helpers";
import { playbookJob } from "./jobs-fixtures";
import { login, loginToken, newServiceAccount, PASSWORD } from "./service-account-fixtures";

const A = "sa-sec";
const B = "sa-sec-b";

describe("service accounts (security)", () => {
  it("only an admin of the account may create, read, change or delete service accounts (viewer and user: 403)", async () => {
    await newServiceAccount(A, { alias: "target" });
    for (const role of ["viewer", "user"] as const) {
      const t = await token([A], role);
      const calls = [
        await api("POST", `/serviceAccounts/${A}`, { token: t, body: { alias: "mine", username: `${role}-made-bot`, password: PASSWORD, role: "admin" } }),
        await api("GET", `/serviceAccounts/${A}`, { token: t }),
        await api("GET", `/serviceAccounts/${A}/target`, { token: t }),
        await api("PUT", `/serviceAccounts/${A}/target`, { token: t, body: { password: "taken over by a user" } }),
        await api("DELETE", `/serviceAccounts/${A}/target`, { token: t }),
        // Access is checked before the input: a bad body tells a weak role nothing either.
        await api("POST", `/serviceAccounts/${A}`, { token: t, body: { alias: 5 } }),
      ];
      for (const r of calls) {
        expect(r.status, `${role}: ${r.text}`).toBe(403);
        expect(r.json.detail).toContain("admin");
      }
    }
    const admin = await token([A], "admin");
    expect((await api("GET", `/serviceAccounts/${A}`, { token: admin })).json.accounts).toEqual(["target"]);
    expect((await login("user-made-bot")).status).toBe(401);
  });

  it("another account's service accounts are 404 (as if missing) and stay untouched", async () => {
    const sa = await newServiceAccount(A, { alias: "private" });
    const stranger = await token([B], "admin");
    expect((await api("GET", `/serviceAccounts/${A}`, { token: stranger })).status).toBe(404);
    expect((await api("GET", `/serviceAccounts/${A}/private`, { token: stranger })).status).toBe(404);
    expect((await api("POST", `/serviceAccounts/${A}`, { token: stranger, body: {} })).status).toBe(404);
    expect((await api("PUT", `/serviceAccounts/${A}/private`, { token: stranger, body: { role: "admin" } })).status).toBe(404);
    expect((await api("DELETE", `/serviceAccounts/${A}/private`, { token: stranger })).status).toBe(404);
    // Through the stranger's own alias the service account is unknown too.
    expect((await api("GET", `/serviceAccounts/${B}/private`, { token: stranger })).status).toBe(404);
    expect((await api("DELETE", `/serviceAccounts/${B}/private`, { token: stranger })).status).toBe(404);
    expect((await api("GET", `/serviceAccounts/${B}`, { token: stranger })).json.accounts).toEqual([]);
    expect((await login(sa.username)).status).toBe(200);
    // An operator may act on any account.
    expect((await api("GET", `/serviceAccounts/${A}/private`, { token: await token("*", "admin") })).status).toBe(200);
  });

  it("a service account acts on its own account only, with its own role", async () => {
    const user = await newServiceAccount(A, { alias: "robot", role: "user" });
    const t = await loginToken(user.username);
    const job = await api("POST", `/jobs/${A}`, { token: t, body: playbookJob() });
    expect(job.status).toBe(200);
    expect((await api("GET", `/jobs/${A}/${job.json.id}`, { token: t })).status).toBe(200);
    expect((await api("POST", `/jobs/${B}`, { token: t, body: playbookJob() })).status).toBe(404);
    expect((await api("GET", `/jobs/${B}`, { token: t })).status).toBe(404);
    // A user may not make service accounts (nor raise itself to admin).
    expect(
      (await api("POST", `/serviceAccounts/${A}`, { token: t, body: { alias: "x2", username: "escalate-bot", password: PASSWORD, role: "admin" } })).status,
    ).toBe(403);
    expect((await api("PUT", `/serviceAccounts/${A}/robot`, { token: t, body: { role: "admin" } })).status).toBe(403);
    // An admin service account manages its account's service accounts.
    const admin = await newServiceAccount(A, { alias: "boss", role: "admin" });
    const at = await loginToken(admin.username);
    expect((await api("GET", `/serviceAccounts/${A}`, { token: at })).status).toBe(200);
    expect((await api("GET", `/serviceAccounts/${B}`, { token: at })).status).toBe(404);
  });

  it("a deleted service account's token is refused at once", async () => {
    const sa = await newServiceAccount(A, { alias: "doomed" });
    const t = await loginToken(sa.username);
    expect((await api("GET", `/jobs/${A}`, { token: t })).status).toBe(200);
    expect((await api("DELETE", `/serviceAccounts/${A}/doomed`, { token: await token([A], "admin") })).status).toBe(204);
    const r = await api("GET", `/jobs/${A}`, { token: t });
    expect(r.status).toBe(401);
    expect(r.json.detail).toMatch(/revoked/);
    expect(r.headers.get("www-authenticate")).toMatch(/invalid_token/);
    // A new service account with the same alias and username does not bring the old token back.
    await newServiceAccount(A, { alias: "doomed", username: sa.username });
    expect((await api("GET", `/jobs/${A}`, { token: t })).status).toBe(401);
  });

  it("a new password, username or role refuses the tokens issued before; a no-op PUT does not", async () => {
    const admin = await token([A], "admin");
    const sa = await newServiceAccount(A, { alias: "rotating", role: "admin" });
    const put = (body: unknown) => api("PUT", `/serviceAccounts/${A}/rotating`, { token: admin, body });
    const changes: [string, unknown, string][] = [
      ["password", { password: "a brand new passphrase" }, "a brand new passphrase"],
      ["the same password again (a reset)", { password: "a brand new passphrase" }, "a brand new passphrase"],
      ["role", { role: "user" }, "a brand new passphrase"],
      ["username", { username: `${sa.username}-renamed` }, "a brand new passphrase"],
    ];
    let username = sa.username;
    let password = PASSWORD;
    for (const [what, body, nextPassword] of changes) {
      const old = await loginToken(username, password);
      expect((await put({})).status).toBe(200);
      expect((await api("GET", `/jobs/${A}`, { token: old })).status, `${what}: untouched by an empty PUT`).toBe(200);
      const r = await put(body);
      expect(r.status).toBe(200);
      expect((await api("GET", `/jobs/${A}`, { token: old })).status, what).toBe(401);
      username = r.json.username;
      password = nextPassword;
      const fresh = await loginToken(username, password);
      expect((await api("GET", `/jobs/${A}`, { token: fresh })).status, what).toBe(200);
    }
    expect((await login(sa.username, "a brand new passphrase")).status).toBe(401); // the old username is gone
  });

  it("a token claiming a service account that does not exist is refused; tokens without the claim cost no lookup", async () => {
    const forged = await signToken(env, { sub: crypto.randomUUID(), accounts: [A], role: "admin" }, 3600, { tv: 1 });
    expect((await api("GET", `/jobs/${A}`, { token: forged })).status).toBe(401);
    const sa = await newServiceAccount(A, { alias: "versioned" });
    const wrongVersion = await signToken(env, { sub: sa.id, accounts: [A], role: "user" }, 3600, { tv: "1" });
    expect((await api("GET", `/jobs/${A}`, { token: wrongVersion })).status).toBe(401);

    const prepared: string[] = [];
    const db = env.DB;
    const spy = new Proxy(db, {
      get: (t, p) => (p === "prepare" ? (sql: string) => (prepared.push(sql), t.prepare(sql)) : Reflect.get(t, p, t)),
    });
    await verifyToken({ ...env, DB: spy }, await token([A], "admin"));
    expect(prepared).toEqual([]);
    await verifyToken({ ...env, DB: spy }, await loginToken(sa.username));
    expect(prepared).toEqual(["SELECT token_version FROM service_accounts WHERE id = ?"]);
  });
});
