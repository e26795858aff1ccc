import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ApiClient } from "../src/api-client.ts";
import { httpFetch } from "../src/http-fetch.ts";

/**
 * The API client's HTTP (agent/src/http-fetch.ts) against a real node:http server: what fetch did
 * for the client (bodies, statuses, headers, redirects, aborts, kept connections), without loading
 * undici.
 */
interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
  socket: number;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse, seen: Seen) => void): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const sockets = new WeakMap<object, number>();
  let nextSocket = 0;
  const server = createServer((req, res) => {
    if (!sockets.has(req.socket)) sockets.set(req.socket, nextSocket++);
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (body += c));
    req.on("end", () => {
      const s = { method: req.method!, url: req.url!, headers: req.headers, body, socket: sockets.get(req.socket)! };
      seen.push(s);
      handler(req, res, s);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

describe("httpFetch", () => {
  it("sends the method, headers and a UTF-8 body; answers the status, headers and text; reuses the connection", async () => {
    const { url, seen } = await serve((_req, res, s) =>
      res.writeHead(201, { "content-type": "application/json", "x-echo": s.body.length.toString() }).end(`{"got":${s.body}}`),
    );
    const body = JSON.stringify({ text: "héllo ✓" });
    const a = await httpFetch(new URL("/agent/x", url), { method: "POST", headers: { "content-type": "application/json", authorization: "Bearer t" }, body });
    expect(a.status).toBe(201);
    expect(a.headers.get("Content-Type")).toBe("application/json");
    expect(a.headers.get("x-missing")).toBeNull();
    expect(JSON.parse(await a.text())).toEqual({ got: { text: "héllo ✓" } });
    expect(seen[0]).toMatchObject({ method: "POST", url: "/agent/x", body });
    expect(seen[0]!.headers).toMatchObject({ authorization: "Bearer t", "content-length": String(Buffer.byteLength(body)) });
    await (await httpFetch(new URL("/again", url), { method: "GET" })).text();
    expect(seen[1]!.socket).toBe(seen[0]!.socket); // kept alive
  });

  it("follows redirects as fetch does: 307 keeps the POST and its body, 303 becomes a GET, another origin gets no credential", async () => {
    const other = await serve((_req, res) => res.end("elsewhere"));
    const { url, seen } = await serve((req, res) => {
      if (req.url === "/307") res.writeHead(307, { location: "/target" }).end();
      else if (req.url === "/303") res.writeHead(303, { location: "/target" }).end();
      else if (req.url === "/away") res.writeHead(308, { location: `${other.url}/x` }).end();
      else res.end("here");
    });
    const init = { method: "POST", headers: { authorization: "Bearer secret", "content-type": "application/json" }, body: "{}" };
    expect(await (await httpFetch(new URL("/307", url), init)).text()).toBe("here");
    expect(seen[1]).toMatchObject({ method: "POST", url: "/target", body: "{}" });
    expect(seen[1]!.headers.authorization).toBe("Bearer secret");
    await (await httpFetch(new URL("/303", url), init)).text();
    expect(seen[3]).toMatchObject({ method: "GET", url: "/target", body: "" });
    expect(await (await httpFetch(new URL("/away", url), init)).text()).toBe("elsewhere");
    expect(other.seen[0]!.headers.authorization).toBeUndefined();
  });

  it("an abort (or a timeout) rejects the call, before or while the answer comes", async () => {
    const { url } = await serve(() => {}); // never answers
    const ac = new AbortController();
    const pending = httpFetch(new URL("/hang", url), { method: "POST", body: "{}", signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    await expect(httpFetch(new URL("/hang", url), { signal: AbortSignal.timeout(50) })).rejects.toMatchObject({ name: "TimeoutError" });
    await expect(httpFetch(new URL("/hang", url), { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: "AbortError" });
    const client = new ApiClient({ url, version: "test", timeoutMs: 50 });
    await expect(client.request("POST", "agent/lease", {})).rejects.toMatchObject({ status: 0, message: expect.stringMatching(/timed out/) });
  });

  it("the API client answers problem+json errors as before", async () => {
    const { url } = await serve((_req, res) =>
      res.writeHead(409, { "content-type": "application/problem+json" }).end(JSON.stringify({ title: "Conflict", detail: "not yours", status: 409 })),
    );
    const client = new ApiClient({ url, version: "test" });
    await expect(client.request("POST", "agent/executions/e/heartbeat", {})).rejects.toMatchObject({
      status: 409,
      message: expect.stringMatching(/409 not yours/),
    });
  });

  it("an agent's calls never load undici (the global fetch's ~10 MiB)", async () => {
    const { url } = await serve((_req, res) => res.end("{}"));
    const script = `
      const { ApiClient } = await import(${JSON.stringify(join(import.meta.dirname, "../src/api-client.ts"))});
      const c = new ApiClient({ url: ${JSON.stringify(url)}, version: "t", credential: "rac_x" });
      await c.request("POST", "agent/lease", { waitMs: 0 });
      console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.includes("undici"))));`;
    // Not spawnSync: the server answering it runs in this process.
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }, (err, out, errOut) =>
        err ? reject(new Error(errOut)) : resolve(out),
      ),
    );
    expect(JSON.parse(stdout)).toEqual([]);
  });

  it("https: the system's trust store (plus NODE_EXTRA_CA_CERTS) decides, and TLS is loaded only for an https URL", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rnr-tls-"));
    try {
      const [key, cert] = [join(dir, "key.pem"), join(dir, "cert.pem")];
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          key,
          "-out",
          cert,
          "-days",
          "1",
          "-subj",
          "/CN=localhost",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
        ],
        { stdio: "ignore" },
      );
      const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => res.end('{"tls":true}'));
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const script = (target: string) => `
        const { httpFetch } = await import(${JSON.stringify(join(import.meta.dirname, "../src/http-fetch.ts"))});
        const tls = () => process.moduleLoadList.some((m) => m === "NativeModule tls");
        const before = tls();
        let answer;
        try { answer = await (await httpFetch(new URL(${JSON.stringify(target)}), { method: "GET" })).text(); } catch (e) { answer = e.code ?? e.message; }
        console.log(JSON.stringify({ before, answer }));
        process.exit(0);`;
      const run = (target: string, env: NodeJS.ProcessEnv) =>
        new Promise<{ before: boolean; answer: string }>((resolve, reject) =>
          execFile(
            process.execPath,
            ["--input-type=module", "-e", script(target)],
            { encoding: "utf8", env: { ...process.env, ...env } },
            (err, out, errOut) => (err ? reject(new Error(errOut)) : resolve(JSON.parse(out))),
          ),
        );
      expect(await run(url, { NODE_EXTRA_CA_CERTS: cert })).toEqual({ before: false, answer: '{"tls":true}' });
      // A certificate nobody vouches for is refused.
      expect((await run(url, { NODE_EXTRA_CA_CERTS: "" })).answer).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
