import { describe, expect, it } from "vitest";
import { api, token } from "./helpers";

describe("downloads and the agent's install commands (happy)", () => {
  it("answers only the agent's and the CLI's tarballs; anything else under /downloads is a 404 problem", async () => {
    for (const f of ["nope.tgz", "runner-agent.tar", "..%2Fwrangler.toml", ".gitkeep", "runner-agent-1.tgz"]) {
      const r = await api("GET", `/downloads/${f}`, { token: null });
      expect(r.status, f).toBe(404);
      expect(r.headers.get("content-type")).toContain("application/problem+json");
    }
    // Served without a token (a fresh host has none) when it was packed; a 404 problem when it was not.
    const r = await api("GET", "/downloads/runner-agent.tgz", { token: null });
    expect([200, 404]).toContain(r.status);
    if (r.status === 200) expect(r.headers.get("content-type")).toBe("application/gzip");
    else expect(r.json.detail).toContain("npm run deploy");
  });

  it("the registration-token answer carries the install and register commands for this API", async () => {
    const r = await api("POST", "/minions/inst/tokens", { token: await token(["inst"]), body: { name: "dc1", location: "dc1" } });
    expect(r.status).toBe(200);
    expect(r.json.installCommand).toBe("npm install -g http://runner.test/downloads/runner-agent.tgz");
    // The token by environment, never as a flag.
    expect(r.json.registerCommand).toBe(`RUNNER_TOKEN=${r.json.token} runner-agent register --url http://runner.test`);
    expect(r.json.registerCommand).not.toContain("--token");
  });
});
