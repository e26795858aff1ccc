import { beforeAll, describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { executionIn, newJob, stub } from "./execution-fixtures";

/** Bad input is a 400 naming the field; unknown things are 404; forbidden states 409; never a 500. */
const ALIAS = "errs";
let jobId: string;
let t: string;
let running: string;
beforeAll(async () => {
  jobId = await newJob(ALIAS);
  t = await token([ALIAS], "user");
  running = await executionIn(ALIAS, jobId, "RUNNING");
});
const one = () => `/jobs/${ALIAS}/${jobId}/executions/${running}`;

function fields(r: { json: { errors?: { field: string }[] } }) {
  return (r.json.errors ?? []).map((e) => e.field).sort();
}

describe("400", () => {
  it("names every bad field of a start body", async () => {
    const r = await api("POST", `/jobs/${ALIAS}/${jobId}/start`, {
      token: t,
      body: { hosts: [{ sshPrivateKey: "k" }], properties: "x", playbookTags: [1], check: "yes" },
    });
    expect(r.status).toBe(400);
    expect(r.headers.get("content-type")).toContain("application/problem+json");
    expect(fields(r)).toEqual(["check", "hosts.0.id", "playbookTags.0", "properties"]);
  });

  it("refuses extra vars nested too deep to store (400, not a 500), however deep", async () => {
    for (const depth of [40, 2_000, 150_000]) {
      const body = `{"properties":{"x":${"[".repeat(depth)}${"]".repeat(depth)}}}`;
      const r = await api("POST", `/jobs/${ALIAS}/${jobId}/start`, { token: t, body });
      expect(r.status, `depth ${depth}`).toBe(400);
      expect(fields(r)).toEqual(["properties"]);
    }
    expect((await api("POST", `/jobs/${ALIAS}/${jobId}/start`, { token: t, body: { properties: { a: { b: [1, { c: 2 }] } } } })).status).toBe(200);
  });

  it("rejects a bad stop expiryDuration", async () => {
    for (const expiryDuration of [-1, 1.5, "10"]) {
      const r = await api("POST", `${one()}/stop`, { token: t, body: { expiryDuration } });
      expect(r.status, JSON.stringify(expiryDuration)).toBe(400);
      expect(fields(r)).toEqual(["expiryDuration"]);
    }
    expect((await stub(running).view()).status).toBe("RUNNING");
  });

  it("rejects bad list and paging parameters", async () => {
    expect(fields(await api("GET", `/jobs/${ALIAS}/executions?status=DONE`, { token: t }))).toEqual(["status"]);
    expect(fields(await api("GET", `/jobs/${ALIAS}/executions?size=0&page=-1`, { token: t }))).toEqual(["page", "size"]);
    expect(fields(await api("GET", `/jobs/${ALIAS}/${jobId}/executions?size=101`, { token: t }))).toEqual(["size"]);
    expect(fields(await api("GET", `${one()}/events?after=x`, { token: t }))).toEqual(["after"]);
    expect(fields(await api("GET", `${one()}/log?follow=maybe`, { token: t }))).toEqual(["follow"]);
  });

  it("rejects malformed JSON and a non-JSON body", async () => {
    const bad = await api("POST", `/jobs/${ALIAS}/${jobId}/start`, { token: t, body: "{nope" });
    expect(bad.status).toBe(400);
    const text = await api("POST", `/jobs/${ALIAS}/${jobId}/start`, { token: t, body: "hi", headers: { "content-type": "text/plain" } });
    expect(text.status).toBe(415);
  });
});

describe("404", () => {
  it("lists under a job id that names nothing; a job without executions is an empty page, a deleted job's are still listed", async () => {
    const unknown = "01234567-89ab-7def-8123-456789abcdef";
    for (const path of [
      `/jobs/${ALIAS}/${unknown}/executions`,
      `/jobs/${ALIAS}/${unknown}/executions?status=RUNNING`,
      `/status/${ALIAS}/job/${unknown}`,
      `/jobs/${ALIAS}/not-an-id/executions`,
    ]) {
      const r = await api("GET", path, { token: t });
      expect(r.status, path).toBe(404);
      expect(r.headers.get("content-type")).toContain("application/problem+json");
    }
    const idle = await newJob(ALIAS);
    for (const path of [`/jobs/${ALIAS}/${idle}/executions`, `/status/${ALIAS}/job/${idle}`, `/jobs/${ALIAS}/${jobId}/executions?status=KILLING`]) {
      const r = await api("GET", path, { token: t });
      expect(r.status, path).toBe(200);
      expect(r.json).toMatchObject({ totalSize: 0, results: [] });
    }
    const gone = await newJob(ALIAS);
    const ended = await executionIn(ALIAS, gone, "KILLED");
    expect((await api("DELETE", `/jobs/${ALIAS}/${gone}`, { token: t })).status).toBe(204);
    expect((await api("GET", `/jobs/${ALIAS}/${gone}/executions`, { token: t })).json.results.map((e: { execution_id: string }) => e.execution_id)).toEqual([
      ended,
    ]);
    expect((await api("GET", `/jobs/${ALIAS}/${gone}/executions?status=RUNNING`, { token: t })).status).toBe(200);
    expect((await api("GET", `/status/${ALIAS}/job/${gone}`, { token: t })).json.totalSize).toBe(3); // PENDING, why it waited, KILLED
  });

  it("starting a job the account does not have", async () => {
    const r = await api("POST", `/jobs/${ALIAS}/01234567-89ab-7def-8123-456789abcdef/start`, { token: t });
    expect(r.status).toBe(404);
  });

  it("an unknown, malformed, or other job's execution id", async () => {
    const other = await newJob(ALIAS);
    for (const path of [
      `/jobs/${ALIAS}/${jobId}/executions/01234567-89ab-7def-8123-456789abcdef`,
      `/jobs/${ALIAS}/${jobId}/executions/not-an-id`,
      `/jobs/${ALIAS}/${other}/executions/${running}`,
    ]) {
      for (const [method, suffix] of [
        ["GET", ""],
        ["GET", "/events"],
        ["GET", "/log"],
        ["GET", "/log?follow=true"],
        ["POST", "/stop"],
        ["POST", "/kill"],
        ["POST", "/restart"],
      ] as const) {
        const r = await api(method, `${path}${suffix}`, { token: t });
        expect(r.status, `${method} ${path}${suffix}`).toBe(404);
        expect(r.headers.get("content-type")).toContain("application/problem+json");
      }
    }
    expect((await api("GET", `/status/${ALIAS}/job/${other}/execution/${running}`, { token: t })).status).toBe(404);
    expect((await stub(running).view()).status).toBe("RUNNING");
  });
});

describe("409", () => {
  it("answers problem+json naming the state, and changes nothing", async () => {
    const done = await executionIn(ALIAS, jobId, "SUCCESS");
    for (const action of ["stop", "kill", "restart"]) {
      const r = await api("POST", `/jobs/${ALIAS}/${jobId}/executions/${done}/${action}`, { token: t });
      expect(r.status).toBe(409);
      expect(r.json).toMatchObject({ status: 409, title: "Conflict" });
      expect(r.json.detail).toContain("SUCCESS");
    }
    expect((await stub(done).view()).status).toBe("SUCCESS");
  });
});
