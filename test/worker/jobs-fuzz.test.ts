import { beforeAll, describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { send, seeded } from "./fuzz-fixtures";
import { b64, playbookJob, repoJob } from "./jobs-fixtures";

/**
 * Fuzz: hundreds of malformed or random bodies, paths, query strings and headers. None may get a
 * 5xx, every error is problem+json, and the jobs stored before are byte-for-byte unchanged after.
 * Seeded, so a failure reproduces: the failing request is printed with its index.
 */
const SEED = 0x5eed_1234;
const ROUNDS = 320;
const KEEP = "fuzz-keep";
const NEW = "fuzz-new";

const { int, pick, chance, randomString } = seeded(SEED);

function randomValue(depth = 0): unknown {
  const kinds = depth > 3 ? 6 : 8;
  switch (int(kinds)) {
    case 0:
      return null;
    case 1:
      return chance(0.5);
    case 2:
      return pick([0, -1, 1, 1.5, 180, 10080, 10081, 1e308, -1e308, 2 ** 53 + 1, -0]);
    case 3:
    case 4:
      return randomString();
    case 5:
      return pick(["", "https://h.example/x", "http://127.0.0.1/x", "git@h:o/r.git", b64("- hosts: all"), "DEBUG", "__proto__"]);
    case 6:
      return Array.from({ length: int(4) }, () => randomValue(depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = int(4); i > 0; i--) o[chance(0.3) ? pick(FIELDS) : randomString(12)] = randomValue(depth + 1);
      return o;
    }
  }
}

const FIELDS = [
  "name",
  "description",
  "executionTtl",
  "callbacks",
  "playbook",
  "repository",
  "playbookTags",
  "hosts",
  "properties",
  "sshPrivateKey",
  "useDynamicInventory",
  "location",
  "id",
  "accountAlias",
  "status",
  "createdTime",
  "links",
  "hasSshPrivateKey",
  "__proto__",
  "constructor",
  "prototype",
] as const;

/** One guaranteed-invalid change, applied last, so bodies sent to stored jobs can never be accepted. */
const POISON: Record<string, unknown>[] = [
  { executionTtl: 0 },
  { hosts: "web1", useDynamicInventory: false },
  { callbacks: [{ url: "ftp://h.example/x" }] },
  { location: "" },
  { properties: [] },
  { useDynamicInventory: "yes" },
  { sshPrivateKey: "***not base64***" },
  { playbook: "%%%", repository: null },
  { hosts: [{ id: "a" }, { id: "a" }], useDynamicInventory: false },
];

function nested(n: number): string {
  return "[".repeat(n) + "]".repeat(n);
}

function mutatedBody(poison: boolean): string {
  const body: Record<string, unknown> = chance(0.5) ? playbookJob() : repoJob();
  for (let i = 1 + int(4); i > 0; i--) {
    const k = pick(FIELDS);
    if (chance(0.2)) delete body[k];
    else body[k] = randomValue();
  }
  if (poison) Object.assign(body, pick(POISON));
  let text = JSON.stringify(body);
  if (chance(0.1)) text = text.replace(/"properties":\{\}/, `"properties":{"deep":${nested(5000)}}`);
  return text;
}

function rawBody(): string | Uint8Array {
  switch (int(7)) {
    case 0:
      return Uint8Array.from({ length: int(200) }, () => int(256));
    case 1:
      return randomString(200);
    case 2:
      return nested(50000);
    case 3:
      return JSON.stringify(randomValue());
    case 4:
      return mutatedBody(false).slice(0, int(200)); // truncated JSON
    case 5:
      return `{"name": "${"\\u".repeat(3)}"}`; // bad escapes
    default:
      return "\ufeff" + JSON.stringify(playbookJob()); // BOM
  }
}

const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "application/problem+json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/JSON",
  "json",
  "",
  "application/json; charset=latin1",
];

function randomQuery(): string {
  const parts: string[] = [];
  for (let i = int(4); i > 0; i--) {
    const k = pick(["page", "size", "immediate", "status", randomString(6), "page[]", "size%00"]);
    const v = pick(["0", "1", "100", "101", "-1", "abc", "", "1e2", "true", "false", "99999999999999999999", encodeURIComponent(randomString(8))]);
    parts.push(`${encodeURIComponent(k)}=${v}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

describe("jobs fuzz (security)", () => {
  const stored: { id: string; text: string }[] = [];
  let listText = "";
  let writer = "";

  beforeAll(async () => {
    writer = await token([KEEP, NEW], "user");
    for (const body of [
      playbookJob({ sshPrivateKey: b64("K1"), hosts: [{ id: "h1", sshPrivateKey: b64("H1") }] }),
      repoJob({ repository: { url: "https://h.example/r.git", defaultPlaybook: "s.yml", credentials: { username: "u", password: "p" } } }),
      playbookJob({ useDynamicInventory: true, hosts: [], properties: { a: { b: [1, 2] } }, callbacks: [{ url: "https://h.example/cb", level: "ERROR" }] }),
    ]) {
      const r = await api("POST", `/jobs/${KEEP}`, { token: writer, body });
      expect(r.status).toBe(200);
      stored.push({ id: r.json.id, text: (await api("GET", `/jobs/${KEEP}/${r.json.id}`, { token: writer })).text });
    }
    listText = (await api("GET", `/jobs/${KEEP}`, { token: writer })).text;
  });

  it(`survives ${ROUNDS} random requests (seed ${SEED.toString(16)}) without a 5xx or a change to stored jobs`, async () => {
    const viewer = await token([KEEP], "viewer");
    const foreign = await token(["someone-else"], "admin");
    const statuses = new Map<number, number>();

    for (let i = 0; i < ROUNDS; i++) {
      const target = pick(stored).id;
      const kind = int(6);
      let method = "GET";
      let path = `/jobs/${KEEP}`;
      let body: string | Uint8Array | undefined;
      const headers: Record<string, string> = { authorization: `Bearer ${writer}` };

      if (kind === 0) {
        // Anything at all into a scratch account (valid creations are fine there).
        method = "POST";
        path = `/jobs/${NEW}${randomQuery()}`;
        body = chance(0.6) ? mutatedBody(false) : rawBody();
      } else if (kind === 1) {
        // Replacing a stored job with a body that must be refused.
        method = "PUT";
        path = `/jobs/${KEEP}/${target}${chance(0.3) ? randomQuery() : ""}`;
        body = chance(0.7) ? mutatedBody(true) : rawBody();
        if (typeof body === "string" && body.startsWith("\ufeff")) body = body.slice(1, 40);
      } else if (kind === 2) {
        // Writes to stored jobs with credentials that may not write them.
        method = pick(["PUT", "DELETE", "POST"]);
        path = method === "POST" ? `/jobs/${KEEP}` : `/jobs/${KEEP}/${target}`;
        body = method === "DELETE" ? undefined : JSON.stringify(playbookJob({ name: "fuzzed" }));
        headers.authorization = pick([
          `Bearer ${viewer}`,
          `Bearer ${foreign}`,
          `Bearer ${writer.slice(0, -3)}abc`,
          `Bearer ${randomString(60).replace(/[^\x21-\x7e]/g, "x")}`,
          "Bearer",
          "",
          `Basic ${btoa("u:p")}`,
          `bearer  ${writer.split(".").slice(0, 2).join(".")}.`,
        ]);
      } else if (kind === 3) {
        // Random paths and query strings.
        method = pick(["GET", "GET", "HEAD", "OPTIONS", "PATCH", "DELETE"]);
        const seg = () => pick([KEEP, NEW, target, encodeURIComponent(randomString(20)), "..", "%2e%2e", "%00", "executions", "x".repeat(300), ""]);
        path = `/jobs/${seg()}/${seg()}${chance(0.5) ? `/${seg()}` : ""}${randomQuery()}`;
        if (method === "DELETE" && path.includes(target)) path = `/jobs/${KEEP}/not-${target}`;
      } else if (kind === 4) {
        // Lists with random paging.
        path = `/jobs/${pick([KEEP, NEW, "a", "bad alias", "x".repeat(40)]).replace(/ /g, "%20")}${randomQuery()}`;
      } else {
        // Random headers on a create.
        method = "POST";
        path = `/jobs/${NEW}`;
        body = mutatedBody(chance(0.5));
        headers["content-type"] = pick(CONTENT_TYPES);
        headers.accept = pick(["*/*", "text/html", "application/xml", randomString(10).replace(/[^\x20-\x7e]/g, "")]);
        if (chance(0.3)) headers["x-forwarded-for"] = randomString(15).replace(/[^\x20-\x7e]/g, "");
      }
      if (body !== undefined && headers["content-type"] === undefined) headers["content-type"] = pick(CONTENT_TYPES.slice(0, 4));
      if (headers["content-type"] === "") delete headers["content-type"];

      await send(i, method, path, { headers, body }, statuses);
    }

    console.log(`fuzz statuses (seed ${SEED.toString(16)}):`, JSON.stringify(Object.fromEntries([...statuses].sort())));
    // The fuzz reached every outcome it is meant to (so it is not silently testing nothing).
    for (const s of [200, 400, 401, 403, 404, 415]) expect(statuses.get(s) ?? 0, `status ${s} seen`).toBeGreaterThan(0);

    for (const s of stored) expect((await api("GET", `/jobs/${KEEP}/${s.id}`, { token: writer })).text).toBe(s.text);
    expect((await api("GET", `/jobs/${KEEP}`, { token: writer })).text).toBe(listText);
  });
});
