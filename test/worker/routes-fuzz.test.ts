import { beforeAll, describe, expect, it } from "vitest";
import { api, token } from "./helpers";
import { call, held, lease, newAgent, newJob, regToken, type TestAgent } from "./agent-fixtures";
import { send, seeded } from "./fuzz-fixtures";
import { CONTENT_TYPES, routeInputs } from "./routes-fuzz-inputs";

/**
 * Fuzz, the second: random and malformed requests to the executions, status, minions, agent and
 * inventory routes. None may get a 5xx, every error is problem+json, and what was stored before
 * (an ended execution with its events and log, the account's agents, tokens and inventory) reads
 * the same after. Requests that could legitimately change that state carry a poison (a field that
 * must be refused, or credentials that may not act); clean writes go to a scratch account.
 * Seeded, so a failure reproduces: the failing request is printed with its index.
 */
const SEED = 0xf022_2026;
const ROUNDS = 300;
const KEEP = "fz-keep";
const SCRATCH = "fz-new";

const { int, pick, chance, randomString, randomValue, poisoned, rawBody, randomQuery } = routeInputs(SEED);

describe("routes fuzz (security)", () => {
  let agent: TestAgent;
  let jobId = "";
  let executionId = "";
  let user = "";
  let snapshot: Record<string, string> = {};

  /** What must read the same after the fuzz (`lastSeen`/`online` move with the clock, so they are left out). */
  async function readState(): Promise<Record<string, string> & {}> {
    const t = await token([KEEP], "admin");
    const get = async (path: string) => {
      const r = await api("GET", path, { token: t });
      expect(r.status, path).toBe(200);
      return r.text;
    };
    const minions = JSON.parse(await get(`/minions/${KEEP}`)) as { results: Record<string, unknown>[] };
    for (const m of minions.results) {
      delete m.lastSeen;
      delete m.online;
    }
    const one = `/jobs/${KEEP}/${jobId}/executions/${executionId}`;
    return {
      execution: await get(one),
      events: await get(`${one}/events`),
      log: await get(`${one}/log`),
      executions: await get(`/jobs/${KEEP}/executions`),
      statusService: await get(`/status/${KEEP}/job/${jobId}`),
      minions: JSON.stringify(minions),
      tokens: await get(`/minions/${KEEP}/tokens`),
      inventory: await get(`/inventory/${KEEP}`),
      job: await get(`/jobs/${KEEP}/${jobId}`),
    };
  }

  beforeAll(async () => {
    user = await token([KEEP, SCRATCH], "user");
    expect((await api("PUT", `/inventory/${KEEP}`, { token: user, body: { hosts: [{ id: "web1", groups: ["web"], hostVars: { a: 1 } }] } })).status).toBe(200);
    agent = await newAgent(KEEP);
    await regToken(KEEP);
    jobId = await newJob(KEEP, { hosts: [{ id: "web1" }, { id: "web2" }] });
    const started = await api("POST", `/jobs/${KEEP}/${jobId}/start`, { token: user });
    executionId = started.json.execution_id;
    expect((await lease(agent)).json.executionId).toBe(executionId);
    const base = `/agent/executions/${executionId}`;
    expect((await call(agent, "POST", `${base}/status`, { ...held(executionId), status: "RUNNING" })).status).toBe(200);
    const events = [1, 2, 3].map((seq) => ({ seq, timestamp: Date.now(), event_type: "runner_on_ok", host: "web1", stdout: `ok ${seq}\n` }));
    expect((await call(agent, "POST", `${base}/events`, { ...held(executionId), events })).json.acceptedThrough).toBe(3);
    expect((await call(agent, "POST", `${base}/status`, { ...held(executionId), status: "SUCCESS" })).status).toBe(200);
    snapshot = await readState();
  });

  it(`survives ${ROUNDS} random requests (seed ${SEED.toString(16)}) without a 5xx or a change to what was stored`, async () => {
    const viewer = await token([KEEP], "viewer");
    const foreign = await token(["someone-else"], "admin");
    // Creating and revoking registration tokens and agents needs an admin (worker/lib/roles.ts).
    const admin = await token([KEEP, SCRATCH], "admin");
    const exec = `/jobs/${KEEP}/${jobId}/executions/${executionId}`;
    const statuses = new Map<number, number>();

    for (let i = 0; i < ROUNDS; i++) {
      let method = "GET";
      let path = "";
      let body: string | Uint8Array | undefined;
      const headers: Record<string, string> = { authorization: `Bearer ${user}` };
      const kind = int(9);

      if (kind === 0) {
        // Executions and the status service: reads with random queries, and every action on the
        // ended execution (the state machine refuses them all, whatever the body).
        method = pick(["GET", "GET", "POST"]);
        const sub = method === "GET" ? pick(["", "/events", "/log", "/nope"]) : pick(["/stop", "/kill", "/restart", "/start"]);
        path = pick([
          `${exec}${sub}`,
          `/jobs/${KEEP}/executions`,
          `/jobs/${KEEP}/${jobId}/executions`,
          `/status/${KEEP}/job/${jobId}`,
          `/status/${KEEP}/job/${jobId}/execution/${executionId}`,
        ]);
        path += randomQuery();
        if (path.includes("/start")) path = `/jobs/${KEEP}/${jobId}/start`;
        // Any body at all for stop/kill/restart: the ended execution refuses them whatever it says.
        if (method === "POST") body = path.endsWith("/start") ? poisoned("start") : chance(0.5) ? JSON.stringify(randomValue()) : rawBody();
      } else if (kind === 1) {
        // Random ids and segments under /jobs and /status.
        method = pick(["GET", "POST", "DELETE", "PATCH"]);
        const seg = () =>
          pick([KEEP, jobId, executionId, encodeURIComponent(randomString(12)), "executions", "..", "%00", "x".repeat(300), crypto.randomUUID()]);
        path = pick([
          `/jobs/${KEEP}/${seg()}/executions/${seg()}/${pick(["stop", "kill", "restart", "log", "events"])}`,
          `/status/${KEEP}/job/${seg()}/execution/${seg()}`,
        ]);
        if (path.includes(executionId) && method !== "GET") headers.authorization = `Bearer ${viewer}`;
        if (method === "POST") body = rawBody();
      } else if (kind === 2) {
        // Inventory: clean or random bodies into the scratch account; refused ones into the kept one.
        method = "PUT";
        if (chance(0.5)) {
          path = `/inventory/${SCRATCH}`;
          body = chance(0.5) ? JSON.stringify({ hosts: [randomValue(), randomValue()] }) : rawBody();
        } else {
          path = `/inventory/${KEEP}`;
          body = chance(0.7) ? poisoned("inventory") : rawBody();
        }
      } else if (kind === 3) {
        // Minions: lists with random paging, tokens into the scratch account, deletes of unknown ids.
        method = pick(["GET", "GET", "POST", "DELETE"]);
        if (method === "GET")
          path = `/minions/${pick([KEEP, SCRATCH, "x", "bad alias"]).replace(/ /g, "%20")}${pick(["", "/tokens", `/${agent.agentId}`, `/${randomString(8)}`])}${randomQuery()}`;
        else if (method === "POST") {
          path = `/minions/${SCRATCH}/tokens`;
          body = chance(0.5) ? JSON.stringify(randomValue()) : rawBody();
        } else path = `/minions/${KEEP}/${pick(["tokens/", ""])}${pick([crypto.randomUUID(), encodeURIComponent(randomString(10))])}`;
        if (method !== "GET") headers.authorization = `Bearer ${admin}`;
      } else if (kind === 4) {
        // The agent protocol with the agent's own credential: every body refused.
        method = "POST";
        headers.authorization = `Bearer ${agent.credential}`;
        path = pick([
          `/agent/executions/${executionId}/${pick(["heartbeat", "status", "events", "release"])}`,
          "/agent/lease",
          `/agent/executions/${encodeURIComponent(randomString(20))}/heartbeat`,
        ]);
        body = path === "/agent/lease" ? poisoned("lease") : chance(0.7) ? poisoned("agent") : rawBody();
      } else if (kind === 5) {
        // The agent protocol with a credential that is not one.
        method = pick(["POST", "GET"]);
        path = pick(["/agent/lease", `/agent/executions/${executionId}/status`, `/agent/executions/${executionId}/events`, "/agent/nope"]);
        headers.authorization = pick([
          `Bearer ${agent.credential.slice(0, -3)}abc`,
          `Bearer rac_${crypto.randomUUID()}_${"A".repeat(43)}`,
          `Bearer ${user}`,
          `Bearer ${randomString(40).replace(/[^\x21-\x7e]/g, "x")}`,
          "Bearer",
          "",
        ]);
        body = JSON.stringify({ attempt: 1, status: "KILLED", events: [] });
      } else if (kind === 6) {
        // Registration: random bodies, random tokens, no operator.
        method = "POST";
        path = "/agent/register";
        headers.authorization = pick(["", `Bearer ${user}`, `Bearer ${viewer}`, `Bearer ${randomString(30).replace(/[^\x21-\x7e]/g, "x")}`]);
        body = chance(0.6) ? JSON.stringify({ ...(randomValue() as object), token: pick([`rrt_${randomString(20)}`, "", 5, null]) }) : rawBody();
      } else if (kind === 7) {
        // Writes to the kept account by credentials that may not write it.
        method = pick(["PUT", "POST", "DELETE"]);
        path = pick([
          `/inventory/${KEEP}`,
          `/minions/${KEEP}/tokens`,
          `/minions/${KEEP}/${agent.agentId}`,
          `${exec}/kill`,
          `${exec}/restart`,
          `/jobs/${KEEP}/${jobId}/start`,
        ]);
        if (method === "DELETE") path = `/minions/${KEEP}/${agent.agentId}`;
        headers.authorization = pick([`Bearer ${viewer}`, `Bearer ${foreign}`, `Bearer ${user.slice(0, -4)}abcd`, ""]);
        body = method === "DELETE" ? undefined : JSON.stringify({ hosts: [] });
      } else {
        // Random content types and accept headers on bodies the routes take.
        method = pick(["PUT", "POST"]);
        path = method === "PUT" ? `/inventory/${SCRATCH}` : `/minions/${SCRATCH}/tokens`;
        if (method === "POST") headers.authorization = `Bearer ${admin}`;
        body = JSON.stringify(method === "PUT" ? { hosts: [{ id: "h1" }] } : { name: "n" });
        headers["content-type"] = pick(CONTENT_TYPES);
        headers.accept = pick(["*/*", "text/html", "text/event-stream", randomString(8).replace(/[^\x20-\x7e]/g, "")]);
      }
      if (body !== undefined && headers["content-type"] === undefined) headers["content-type"] = pick(CONTENT_TYPES.slice(0, 3));
      if (headers["content-type"] === "") delete headers["content-type"];
      if (headers.authorization === "") delete headers.authorization;

      await send(i, method, path, { headers, body }, statuses);
    }

    console.log(`routes fuzz statuses (seed ${SEED.toString(16)}):`, JSON.stringify(Object.fromEntries([...statuses].sort())));
    // The fuzz reached every outcome it is meant to (so it is not silently testing nothing).
    for (const s of [200, 400, 401, 403, 404, 409, 415]) expect(statuses.get(s) ?? 0, `status ${s} seen`).toBeGreaterThan(0);

    const after = await readState();
    for (const [k, v] of Object.entries(snapshot)) expect(after[k], k).toBe(v);
  });

  // A third dimension on its own seed (so the run above replays as it always did): odd paths
  // (malformed escapes, huge or many segments, dot segments, other casings), huge and repeated
  // query strings, and headers the routes read or might trip over, over every resource.
  const ODD_SEED = 0x0dd_2026;
  const ODD_ROUNDS = 240;

  it(`survives ${ODD_ROUNDS} odd paths, query strings and headers (seed ${ODD_SEED.toString(16)}) without a 5xx or a change`, async () => {
    const r = seeded(ODD_SEED, { longStrings: 0.05 });
    const scratchJob = await newJob(SCRATCH);
    const exec = `/jobs/${KEEP}/${jobId}/executions/${executionId}`;
    const statuses = new Map<number, number>();
    // Printable ASCII: what an HTTP header can carry (fetch would re-encode anything else).
    const latin1 = (n: number) => Array.from({ length: n }, () => String.fromCharCode(0x20 + r.int(0x5f))).join("");
    const ESCAPES = ["%", "%Z", "%ZZ", "%E0%A4", "%C0%AF", "%FF", "%2F", "%5C", "%00", "%2e%2e", "%25", "%F0%9F%98%80", "%u2603", "\u00e9", "\u{1F600}"];
    const segment = (): string =>
      r.pick([
        KEEP,
        SCRATCH,
        jobId,
        executionId,
        "executions",
        "tokens",
        "job",
        "execution",
        "log",
        "events",
        "stop",
        "kill",
        "restart",
        "start",
        r.pick(ESCAPES),
        `${r.pick(ESCAPES)}${r.randomString(6).replace(/[#?/%]/g, "")}`,
        "x".repeat(1 + r.int(20_000)),
        ".",
        "..",
        "",
        ";x=1",
        agent.agentId,
        KEEP.toUpperCase(),
        encodeURIComponent(r.randomString(12)),
      ]);
    const oddQuery = (): string => {
      switch (r.int(6)) {
        case 0:
          return "";
        case 1:
          return `?${"page=1&".repeat(1 + r.int(2000))}size=2`;
        case 2:
          return `?${r.pick(["page", "size", "after", "status", "follow", "immediate"])}=${r.pick(ESCAPES)}`;
        case 3:
          return `?${"q".repeat(r.int(30_000))}=${"v".repeat(r.int(3_000))}`;
        case 4:
          return `?status=${r.pick(["running", "Running", "RUNNING ", "RUNNING,SUCCESS", "RUNNING&status=SUCCESS", ""])}&after=${r.pick(["-1", "1e3", "0x10", "٣", "999999999999999999999"])}`;
        default:
          return `?${r.pick(["page", "size", "&&&", "=", "==", "a[b]=c", "follow"])}`;
      }
    };
    const HEADERS: [string, () => string][] = [
      ["last-event-id", () => r.pick(["-1", "1e3", "99999999999999999999", "abc", "", " 1 ", latin1(40), "0".repeat(5000)])],
      [
        "content-type",
        () => r.pick(["application/json; charset=utf-16", "application/json;;;", "application/*", "*/*", "application/json, text/plain", latin1(30)]),
      ],
      ["content-encoding", () => r.pick(["gzip", "br", "deflate", "identity", latin1(10)])],
      ["accept", () => r.pick(["text/event-stream", "application/problem+json", "*/*;q=0", latin1(50)])],
      ["accept-encoding", () => r.pick(["gzip", "br, zstd", latin1(20)])],
      ["x-http-method-override", () => r.pick(["DELETE", "PUT", "PATCH"])],
      ["range", () => r.pick(["bytes=0-10", "bytes=-5", latin1(15)])],
      ["if-none-match", () => r.pick(["*", '"x"', latin1(20)])],
      ["cookie", () => latin1(200)],
      ["x-forwarded-for", () => latin1(60)],
      [
        "authorization",
        () =>
          r.pick([
            `Bearer ${user}`,
            `Bearer ${user}`,
            `Bearer ${"A".repeat(16_000)}`,
            `Bearer ${user} ${user}`,
            `BEARER ${user}`,
            `Bearer\t${user}`,
            `Bearer ${agent.credential}`,
            latin1(80),
          ]),
      ],
    ];

    const ROUTES = [
      `/jobs/${KEEP}`,
      `/jobs/${KEEP}/${jobId}`,
      `/jobs/${KEEP}/executions`,
      `/jobs/${KEEP}/${jobId}/executions`,
      exec,
      `${exec}/log`,
      `${exec}/events`,
      `/status/${KEEP}/job/${jobId}`,
      `/status/${KEEP}/job/${jobId}/execution/${executionId}`,
      `/minions/${KEEP}`,
      `/minions/${KEEP}/tokens`,
      `/minions/${KEEP}/${agent.agentId}`,
      `/inventory/${KEEP}`,
      "/agent/lease",
      `/agent/executions/${executionId}/heartbeat`,
      "/health",
      // Writes that may succeed go to the scratch account; the agent's go to the ended execution.
      `/jobs/${SCRATCH}/${scratchJob}/start`,
      `/jobs/${SCRATCH}`,
      `/inventory/${SCRATCH}`,
      `/agent/executions/${executionId}/events`,
      `/agent/executions/${executionId}/status`,
    ];
    // First, on purpose rather than by chance: every route that takes a body, given one of the right
    // shape whose free-form part nests deeper than anything can store, at three depths.
    const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
    const agentAuth = { authorization: `Bearer ${agent.credential}`, "content-type": "application/json" };
    const userAuth = { authorization: `Bearer ${user}`, "content-type": "application/json" };
    for (const [d, depth] of [40, 5_000, 100_000].entries()) {
      const x = deep(depth);
      const cases: [string, string, Record<string, string>][] = [
        [`/jobs/${SCRATCH}/${scratchJob}/start`, `{"properties":{"x":${x}}}`, userAuth],
        [`/jobs/${SCRATCH}`, `{"playbook":"LSBob3N0czogYWxsCg==","hosts":[{"id":"h"}],"properties":{"x":${x}}}`, userAuth],
        [`/jobs/${SCRATCH}/${scratchJob}`, `{"playbook":"LSBob3N0czogYWxsCg==","hosts":[{"id":"h","hostVars":{"x":${x}}}]}`, userAuth],
        [`/inventory/${SCRATCH}`, `{"hosts":[{"id":"h","hostVars":{"x":${x}}}]}`, userAuth],
        [
          `/agent/executions/${executionId}/events`,
          `{"attempt":1,"leaseId":"${held(executionId).leaseId}","events":[{"seq":1,"timestamp":1,"event_type":"runner_on_ok","data":{"x":${x}}}]}`,
          agentAuth,
        ],
        [
          `/agent/executions/${executionId}/status`,
          `{"attempt":1,"leaseId":"${held(executionId).leaseId}","status":"FAILURE","hostStats":{"h":{"ok":1,"changed":0,"failed":0,"skipped":0,"unreachable":0,"rescued":0,"ignored":0,"x":${x}}}}`,
          agentAuth,
        ],
        [`/minions/${SCRATCH}/tokens`, `{"name":${x}}`, userAuth],
      ];
      for (const [j, [path, body, headers]] of cases.entries()) {
        await send(
          1000 * (d + 1) + j,
          path.includes(`/${scratchJob}`) && !path.endsWith("/start") ? "PUT" : path.startsWith("/inventory") ? "PUT" : "POST",
          path,
          { headers, body },
          statuses,
        );
      }
    }

    for (let i = 0; i < ODD_ROUNDS; i++) {
      let path: string;
      const shape = r.int(10);
      if (shape < 5) {
        // A real route with one of its parameters (or a fixed word) swapped for an odd segment.
        const parts = r.pick(ROUTES).split("/");
        const at = 1 + r.int(parts.length - 1);
        parts[at] = segment();
        path = parts.join("/");
      } else if (shape < 7) {
        path = r.pick(ROUTES);
      } else {
        const prefix = r.pick([
          "/jobs",
          "/status",
          "/minions",
          "/agent",
          "/inventory",
          "/JOBS",
          "",
          "//jobs",
          "/jobs/",
          "/health",
          "/docs",
          "/openapi.json",
          "/.well-known/jwks.json",
        ]);
        path = `${prefix}${Array.from({ length: r.int(5) }, () => `/${segment()}`).join("")}`;
        if (r.chance(0.15)) path = `/jobs${"/a".repeat(1 + r.int(2000))}`;
      }
      path = (path || "/") + oddQuery();
      const method = r.pick(["GET", "GET", "GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"]);
      const headers: Record<string, string> = { authorization: `Bearer ${user}` };
      for (let n = r.int(4); n > 0; n--) {
        const [name, value] = r.pick(HEADERS);
        headers[name] = value();
      }
      // Writes that could be accepted go to the scratch account; on the kept one they must be refused.
      let body: string | Uint8Array | undefined;
      if (method !== "GET" && method !== "HEAD") {
        body = r.pick([
          "",
          "{}",
          JSON.stringify({ hosts: [{ id: "h" }] }),
          `{"properties":{"x":${"[".repeat(60_000)}${"]".repeat(60_000)}}}`,
          `{"attempt":1,"leaseId":"${held(executionId).leaseId}","events":[{"seq":1,"timestamp":1,"event_type":"runner_on_ok","data":${"[".repeat(60_000)}${"]".repeat(60_000)}}]}`,
          Uint8Array.from({ length: 64 }, () => r.int(256)),
        ]);
        // The agent may call on the ended execution: it refuses everything (400, else 409 abandon).
        if (path.startsWith(`/agent/executions/${executionId}/`)) headers.authorization = `Bearer ${agent.credential}`;
        else if (path.startsWith("/agent/register")) headers.authorization = "Bearer x";
        else if (!path.includes(SCRATCH) || path.includes(KEEP)) {
          headers.authorization = r.pick([`Bearer ${await token([KEEP], "viewer")}`, `Bearer ${await token(["someone-else"], "admin")}`]);
        }
      }
      await send(i, method, path, { headers, body }, statuses);
    }

    console.log(`odd requests statuses (seed ${ODD_SEED.toString(16)}):`, JSON.stringify(Object.fromEntries([...statuses].sort())));
    for (const s of [200, 400, 401, 404]) expect(statuses.get(s) ?? 0, `status ${s} seen`).toBeGreaterThan(0);
    const after = await readState();
    for (const [k, v] of Object.entries(snapshot)) expect(after[k], k).toBe(v);
  });
});
