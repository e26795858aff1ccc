import { describe, expect, it, vi } from "vitest";
import { PBKDF2_ITERATIONS } from "../../worker/lib/password";
import { api } from "./helpers";
import { login, newServiceAccount } from "./service-account-fixtures";

const A = "login-err";
const fields = (r: { json: any }) => (r.json.errors as { field: string }[]).map((e) => e.field).sort();

/** What a client can tell two answers apart by (the request id, in the header and the body, differs by nature). */
const visible = (r: { status: number; text: string; headers: Headers }) => ({
  status: r.status,
  text: r.text.replace(/"requestId":"[^"]*"/, '"requestId":"…"'),
  headers: [...r.headers].filter(([k]) => k !== "runner-request-id" && k !== "date"),
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

describe("POST /authentication/login (bad input and refusals)", () => {
  it("bad input is a 400 naming each field", async () => {
    const cases: [unknown, string[]][] = [
      [{}, ["password", "username"]],
      [{ username: 5, password: ["x"] }, ["password", "username"]],
      [{ username: "", password: "" }, ["password", "username"]],
      [{ username: "u".repeat(257), password: "p".repeat(1025) }, ["password", "username"]],
      [{ username: "someone" }, ["password"]],
      [[], ["body"]],
    ];
    for (const [body, expected] of cases) {
      const r = await api("POST", "/authentication/login", { token: null, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(fields(r), JSON.stringify(body)).toEqual(expected);
    }
    const notJson = await api("POST", "/authentication/login", { token: null, body: "{username", headers: { "content-type": "application/json" } });
    expect(notJson.status).toBe(400);
    expect(fields(notJson)).toEqual(["body"]);
    expect(
      (await api("POST", "/authentication/login", { token: null, body: "username=x", headers: { "content-type": "application/x-www-form-urlencoded" } }))
        .status,
    ).toBe(415);
  });

  it("an unknown username and a wrong password get the same 401, byte for byte", async () => {
    const sa = await newServiceAccount(A, { alias: "real" });
    const wrong = await login(sa.username, "not the password at all");
    const unknown = await login("nobody-by-this-name", "not the password at all");
    expect(wrong.status).toBe(401);
    expect(visible(wrong)).toEqual(visible(unknown));
    expect(wrong.headers.get("content-type")).toContain("application/problem+json");
    expect(wrong.json.detail).toBe("The username or password is not right.");
    // Not even the username's syntax is judged: one that no service account could have is just unknown.
    expect(visible(await login("no spaces/allowed!", "not the password at all"))).toEqual(visible(unknown));
  });

  it("prints how long an unknown username, a wrong password and a success take (figures, not asserted)", async () => {
    const sa = await newServiceAccount(A, { alias: "timed" });
    const wrong: number[] = [];
    const unknown: number[] = [];
    const ok: number[] = [];
    // Alternating, and under the throttle's limit of 5 per username. One unknown username, as one
    // known one: a username's first attempt also wakes its throttle object, known or not.
    for (let i = 0; i < 4; i++) {
      let t = performance.now();
      expect((await login(sa.username, `wrong password ${i}`)).status).toBe(401);
      wrong.push(performance.now() - t);
      t = performance.now();
      expect((await login("nobody-timed", `wrong password ${i}`)).status).toBe(401);
      unknown.push(performance.now() - t);
    }
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      expect((await login(sa.username)).status).toBe(200);
      ok.push(performance.now() - t);
    }
    console.log(
      `login ms, median of each: wrong password ${median(wrong).toFixed(1)}, unknown user ${median(unknown).toFixed(1)}, success ${median(ok).toFixed(1)}`,
    );
    // Speed is measured, not asserted: that both paths do the same work is the next test's (counted).
  });

  it("does the same work for both: one PBKDF2-SHA256 derivation with the same iteration count", async () => {
    const sa = await newServiceAccount(A, { alias: "counted" });
    const calls: unknown[] = [];
    const original = crypto.subtle.deriveBits.bind(crypto.subtle);
    // The Worker runs in this isolate: its calls go through the spy.
    const spy = vi.spyOn(crypto.subtle, "deriveBits").mockImplementation((...args) => (calls.push(args[0]), original(...args)));
    try {
      const seen: unknown[][] = [];
      for (const [username, password] of [
        [sa.username, "not the password, no"],
        ["nobody-counted", "not the password, no"],
      ] as const) {
        calls.length = 0;
        expect((await login(username, password)).status).toBe(401);
        seen.push(calls.map((c) => ({ ...(c as object), salt: undefined })));
      }
      expect(seen[0]).toEqual([{ name: "PBKDF2", hash: "SHA-256", iterations: PBKDF2_ITERATIONS, salt: undefined }]);
      expect(seen[1]).toEqual(seen[0]);
    } finally {
      spy.mockRestore();
    }
  });
});
