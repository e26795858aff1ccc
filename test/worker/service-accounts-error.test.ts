import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { newServiceAccount, PASSWORD } from "./service-account-fixtures";

const A = "sa-err";
const fields = (r: { json: any }) => (r.json.errors as { field: string }[]).map((e) => e.field).sort();

describe("service accounts (bad input and conflicts)", () => {
  it("bad input is a 400 naming each field", async () => {
    const admin = await token([A], "admin");
    const cases: [unknown, string[]][] = [
      [{}, ["alias", "password", "username"]],
      [{ alias: 5, username: ["x"], password: true, role: 1 }, ["alias", "password", "role", "username"]],
      [{ alias: "a", username: "u", password: "short" }, ["alias", "password", "username"]], // too short, all three
      [{ alias: "x".repeat(65), username: "u".repeat(129), password: "p".repeat(1025) }, ["alias", "password", "username"]], // over-long
      [{ alias: "has space", username: "no/slash", password: PASSWORD }, ["alias", "username"]],
      [{ alias: "ok", username: "root-bot", password: PASSWORD, role: "root" }, ["role"]], // unknown role
      [{ alias: "ok", username: "Same-As-Password", password: "same-as-PASSWORD" }, ["password"]], // the username, whatever the case
      [{ alias: "ok", username: "bot-x", password: null }, ["password"]],
      [[], ["body"]],
      ["null", ["body"]],
    ];
    for (const [body, expected] of cases) {
      const r = await api("POST", `/serviceAccounts/${A}`, { token: admin, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.headers.get("content-type")).toContain("application/problem+json");
      expect(fields(r), JSON.stringify(body)).toEqual(expected);
    }
    const notJson = await api("POST", `/serviceAccounts/${A}`, { token: admin, body: "{alias:", headers: { "content-type": "application/json" } });
    expect(notJson.status).toBe(400);
    expect(fields(notJson)).toEqual(["body"]);
    expect((await api("POST", `/serviceAccounts/${A}`, { token: admin, body: "alias=x", headers: { "content-type": "text/plain" } })).status).toBe(415);
    const page = await api("GET", `/serviceAccounts/${A}?size=0&page=x`, { token: admin });
    expect(page.status).toBe(400);
    expect(fields(page)).toEqual(["page", "size"]);
    expect((await api("GET", `/serviceAccounts/${A}`, { token: admin })).json.totalSize).toBe(0); // nothing was made
  });

  it("PUT: bad fields are 400 naming each; the alias cannot change; the password cannot become the username", async () => {
    const sa = await newServiceAccount(A, { alias: "putter" });
    const admin = await token([A], "admin");
    const put = (body: unknown) => api("PUT", `/serviceAccounts/${A}/putter`, { token: admin, body });
    const bad = await put({ username: "", password: "short", role: "owner" });
    expect(bad.status).toBe(400);
    expect(fields(bad)).toEqual(["password", "role", "username"]);
    const rename = await put({ alias: "other-name" });
    expect(rename.status).toBe(400);
    expect(fields(rename)).toEqual(["alias"]);
    expect((await put({ alias: "putter" })).status).toBe(200); // its own alias is fine
    const same = await put({ password: sa.username.toUpperCase() + "-" }); // not the username: fine
    expect(same.status).toBe(200);
    const asUsername = await put({ password: sa.username.toUpperCase() }); // its stored username (at least 12 characters here)
    expect(asUsername.status).toBe(400);
    expect(fields(asUsername)).toEqual(["password"]);
    expect(fields(await put({ username: "new-name-1234", password: "NEW-NAME-1234" }))).toEqual(["password"]);
  });

  it("a duplicate alias in the account is 409; the same alias in another account is fine", async () => {
    await newServiceAccount(A, { alias: "twice" });
    const again = await api("POST", `/serviceAccounts/${A}`, {
      token: await token([A], "admin"),
      body: { alias: "twice", username: "fresh-name-1", password: PASSWORD },
    });
    expect(again.status).toBe(409);
    expect(fields(again)).toEqual(["alias"]);
    await newServiceAccount("sa-err-other", { alias: "twice" });
  });

  it("a username is unique across the service, whatever the case: 409 on create and on update", async () => {
    const taken = await newServiceAccount("sa-err-one", { username: "Shared-Name" });
    for (const username of ["Shared-Name", "shared-name", "SHARED-NAME"]) {
      const r = await api("POST", `/serviceAccounts/${A}`, { token: await token([A], "admin"), body: { alias: "clash", username, password: PASSWORD } });
      expect(r.status, username).toBe(409);
      expect(fields(r)).toEqual(["username"]);
      expect(r.text).not.toContain("sa-err-one"); // which account holds it is not said
    }
    const mine = await newServiceAccount(A, { alias: "renamer" });
    const r = await api("PUT", `/serviceAccounts/${A}/renamer`, { token: await token([A], "admin"), body: { username: "shared-NAME" } });
    expect(r.status).toBe(409);
    expect(fields(r)).toEqual(["username"]);
    // Its own name in another case is not a clash.
    const recase = await api("PUT", `/serviceAccounts/${A}/renamer`, { token: await token([A], "admin"), body: { username: mine.username.toUpperCase() } });
    expect(recase.status).toBe(200);
    expect(taken.username).toBe("Shared-Name");
  });

  it("missing service accounts are 404 for every verb", async () => {
    const admin = await token([A], "admin");
    for (const alias of ["nobody", "x".repeat(300), "%2e%2e"]) {
      expect((await api("GET", `/serviceAccounts/${A}/${alias}`, { token: admin })).status).toBe(404);
      expect((await api("PUT", `/serviceAccounts/${A}/${alias}`, { token: admin, body: { role: "viewer" } })).status).toBe(404);
      expect((await api("DELETE", `/serviceAccounts/${A}/${alias}`, { token: admin })).status).toBe(404);
    }
    await newServiceAccount(A, { alias: "gone" });
    expect((await api("DELETE", `/serviceAccounts/${A}/gone`, { token: admin })).status).toBe(204);
    expect((await api("DELETE", `/serviceAccounts/${A}/gone`, { token: admin })).status).toBe(404);
  });
});
