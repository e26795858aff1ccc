import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PBKDF2_ITERATIONS } from "../../worker/lib/password";
import { api, token } from "./helpers";
import { newServiceAccount, PASSWORD } from "./service-account-fixtures";

const A = "sa-happy";

describe("service accounts (happy)", () => {
  it("creates, reads, lists, updates and deletes; the answers have the original's fields", async () => {
    const admin = await token([A], "admin");
    const created = await api("POST", `/serviceAccounts/${A}`, { token: admin, body: { alias: "deployer", username: "deploy-bot", password: PASSWORD } });
    expect(created.status).toBe(200);
    expect(created.json).toEqual({
      id: expect.any(String),
      accountAlias: A,
      alias: "deployer",
      username: "deploy-bot",
      role: "user", // the default
      createdTime: expect.any(Number),
      lastUpdatedTime: created.json.createdTime,
    });

    const one = await api("GET", `/serviceAccounts/${A}/deployer`, { token: admin });
    expect(one.status).toBe(200);
    expect(one.json).toEqual(created.json);

    const put = await api("PUT", `/serviceAccounts/${A}/deployer`, {
      token: admin,
      body: { username: "deploy-bot-2", password: "another long passphrase", role: "viewer" },
    });
    expect(put.status).toBe(200);
    expect(put.json).toMatchObject({ id: created.json.id, alias: "deployer", username: "deploy-bot-2", role: "viewer", createdTime: created.json.createdTime });
    expect(put.json.lastUpdatedTime).toBeGreaterThanOrEqual(created.json.lastUpdatedTime);
    expect((await api("GET", `/serviceAccounts/${A}/deployer`, { token: admin })).json).toEqual(put.json);

    const del = await api("DELETE", `/serviceAccounts/${A}/deployer`, { token: admin });
    expect(del.status).toBe(204);
    expect(del.text).toBe("");
    expect((await api("GET", `/serviceAccounts/${A}/deployer`, { token: admin })).status).toBe(404);
  });

  it("lists as the original did ({accounts: [aliases]}), plus results, newest first", async () => {
    const L = "sa-list";
    expect((await api("GET", `/serviceAccounts/${L}`, { token: await token([L], "admin") })).json).toEqual({
      accounts: [],
      totalSize: 0,
      page: 0,
      size: 100,
      results: [],
    });
    const first = await newServiceAccount(L, { alias: "one" });
    const second = await newServiceAccount(L, { alias: "two", role: "admin" });
    await newServiceAccount("sa-list-other", { alias: "elsewhere" });
    const r = await api("GET", `/serviceAccounts/${L}`, { token: await token([L], "admin") });
    expect(r.status).toBe(200);
    expect(r.json.accounts).toEqual(["two", "one"]);
    expect(r.json.results).toEqual([second, first]);
    expect(r.json).toMatchObject({ totalSize: 2, page: 0, size: 100 });
    const paged = await api("GET", `/serviceAccounts/${L}?size=1&page=1`, { token: await token([L], "admin") });
    expect(paged.json).toEqual({ accounts: ["one"], totalSize: 2, page: 1, size: 1, results: [first] });
  });

  it("PUT keeps what the body leaves out, and accepts back what GET answered", async () => {
    const sa = await newServiceAccount(A, { alias: "keeper", role: "admin" });
    const admin = await token([A], "admin");
    // GET, change the role, PUT back (read-only fields included; no password: it is kept).
    const r = await api("PUT", `/serviceAccounts/${A}/keeper`, { token: admin, body: { ...sa, role: "user" } });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ username: sa.username, role: "user" });
    const empty = await api("PUT", `/serviceAccounts/${A}/keeper`, { token: admin, body: {} });
    expect(empty.status).toBe(200);
    expect(empty.json).toEqual(r.json);
    const row = await env.DB.prepare("SELECT password_hash FROM service_accounts WHERE id = ?").bind(sa.id).first<{ password_hash: string }>();
    const login = await api("POST", "/authentication/login", { token: null, body: { username: sa.username, password: PASSWORD } });
    expect(login.status).toBe(200); // the password was kept
    expect(row!.password_hash).toBeTruthy();
  });

  it("never answers the password, nor its hash or salt; stores only a salted PBKDF2 hash with its iteration count", async () => {
    const admin = await token([A], "admin");
    const secret = "s3cret-passphrase-Ω-never-answered";
    const created = await api("POST", `/serviceAccounts/${A}`, {
      token: admin,
      body: { alias: "quiet", username: "quiet-bot", password: secret, role: "admin" },
    });
    const row = await env.DB.prepare("SELECT * FROM service_accounts WHERE id = ?").bind(created.json.id).first<Record<string, unknown>>();
    expect(row).toMatchObject({ password_iterations: PBKDF2_ITERATIONS, token_version: 1 });
    expect(atob(row!.password_hash as string)).toHaveLength(32);
    expect(atob(row!.password_salt as string)).toHaveLength(16);
    expect(JSON.stringify(row)).not.toContain(secret);
    // The same password twice gets two salts, so two hashes.
    const twin = await api("POST", `/serviceAccounts/${A}`, { token: admin, body: { alias: "quiet2", username: "quiet-bot-2", password: secret } });
    const twinRow = await env.DB.prepare("SELECT password_hash, password_salt FROM service_accounts WHERE id = ?")
      .bind(twin.json.id)
      .first<Record<string, string>>();
    expect(twinRow!.password_salt).not.toBe(row!.password_salt);
    expect(twinRow!.password_hash).not.toBe(row!.password_hash);

    const answers = [
      created,
      twin,
      await api("GET", `/serviceAccounts/${A}/quiet`, { token: admin }),
      await api("GET", `/serviceAccounts/${A}`, { token: admin }),
      await api("PUT", `/serviceAccounts/${A}/quiet`, { token: admin, body: { password: `${secret}-2` } }),
      await api("POST", `/serviceAccounts/${A}`, { token: admin, body: { alias: "quiet", username: "x-bot", password: secret } }), // 409
      await api("POST", `/serviceAccounts/${A}`, { token: admin, body: { alias: "q", username: "x-bot", password: secret } }), // 400
      await api("POST", "/authentication/login", { token: null, body: { username: "quiet-bot", password: `${secret}-2` } }),
      await api("POST", "/authentication/login", { token: null, body: { username: "quiet-bot", password: secret } }), // 401
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 409, 400, 200, 401]);
    const after = await env.DB.prepare("SELECT password_hash, password_salt FROM service_accounts WHERE id = ?")
      .bind(created.json.id)
      .first<Record<string, string>>();
    for (const a of answers) {
      for (const leak of [secret, row!.password_hash as string, row!.password_salt as string, after!.password_hash, after!.password_salt]) {
        expect(a.text).not.toContain(leak);
      }
      expect(a.text).not.toMatch(/"password"\s*:/);
    }
  });
});
