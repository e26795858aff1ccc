import { env, runInDurableObject } from "cloudflare:test";
import { generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { dispatcherKey } from "../../worker/domain/contracts";
import type { Execution } from "../../worker/index";
import { remoteJwksCacheSize, tokenCacheSize, verifyToken } from "../../worker/lib/auth";
import { TOKEN_CACHE_MAX } from "../../worker/lib/token-cache";
import { encryptSecret, ringCacheSize } from "../../worker/lib/secrets";
import { api, token } from "./helpers";
import { dispatcher, lease, newAgent } from "./agent-fixtures";
import { AGENT, executionIn, newJob, object, ref, start, stub } from "./execution-fixtures";

/**
 * "No memory of ours grows" (issue 13, item 5): nothing in the isolate or the Durable Objects is
 * kept per request, per token or per execution without a bound or a removal point. Many distinct
 * tokens, executions, polls and followers come and go; then each collection is counted through
 * its test-only introspection (`ringCacheSize`, `remoteJwksCacheSize`, `tokenCacheSize`, the Dispatcher's `sizes()`,
 * the Execution's `memorySizes()`). The module-level caches are this isolate's: the Worker under
 * test runs in it.
 */

/** Runs `fn` over `items`, `width` at a time. */
async function inParallel<T>(items: T[], width: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

const key32 = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));

describe("memory that could grow per request, token or execution", () => {
  it("2,000 requests with 2,000 distinct tokens leave no per-token entry beyond the verified-token cache's bound", async () => {
    const before = { rings: ringCacheSize(), remote: remoteJwksCacheSize() };
    await newJob("mem1");
    const tokens = await Promise.all(Array.from({ length: 2_000 }, (_, i) => token(["mem1"], "viewer", `user-${i}`)));
    await inParallel(tokens, 16, async (t) => {
      const r = await api("GET", "/jobs/mem1?size=1", { token: t });
      expect(r.status).toBe(200);
    });
    expect({ rings: ringCacheSize(), remote: remoteJwksCacheSize() }).toEqual(before);
    // More tokens than it may hold went through it: it keeps its bound (the most recent ones).
    expect(TOKEN_CACHE_MAX).toBeLessThan(tokens.length);
    expect(tokenCacheSize()).toBe(TOKEN_CACHE_MAX);
  }, 180_000);

  it("the key-ring and remote-JWKS caches keep a few configurations, however many they see", async () => {
    for (let i = 0; i < 50; i++) await encryptSecret({ RUNNER_SECRETS_KEY: `k${i}:${key32()}` }, "x");
    expect(ringCacheSize()).toBeLessThanOrEqual(4);
    const { privateKey } = await generateKeyPair("ES256");
    for (let i = 0; i < 6; i++) {
      const issuer = `https://issuer-${i}.example`;
      const t = await new SignJWT({ accounts: ["mem2"] })
        .setProtectedHeader({ alg: "ES256" })
        .setIssuer(issuer)
        .setAudience("runner")
        .setSubject("s")
        .setExpirationTime("1h")
        .sign(privateKey);
      // Nothing listens there: the key fetch fails, and the token is refused; the set was cached all the same.
      const e = { ...env, OIDC_ISSUER: issuer, OIDC_AUDIENCE: "runner", OIDC_JWKS: "", OIDC_JWKS_URL: `http://127.0.0.1:9/jwks-${i}.json` } as Env;
      await expect(verifyToken(e, t)).rejects.toMatchObject({ status: 401 });
    }
    expect(remoteJwksCacheSize()).toBeLessThanOrEqual(4);
  }, 60_000);

  it("the dispatcher: polls that open and close leave no waiter; revocations are remembered up to a bound; told reasons go with their executions", async () => {
    const agent = await newAgent("mem3");
    const key = dispatcherKey("mem3", null);
    const polls = Array.from({ length: 1_000 }, (_, i) => i);
    await inParallel(polls, 20, async () => {
      const r = await lease(agent, 0);
      expect(r.status).toBe(204);
    });
    await inParallel(
      Array.from({ length: 1_500 }, (_, i) => i),
      20,
      async (i) => {
        await dispatcher(key).agentRevoked(`gone-${i}`);
      },
    );
    const job = await newJob("mem3");
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push(await start("mem3", job));
    expect((await dispatcher(key).sizes()).told).toBe(200);
    await inParallel(ids, 8, async (id) => {
      await stub(id).kill({ accountAlias: "mem3" });
    });
    const sizes = await dispatcher(key).sizes();
    expect(sizes).toMatchObject({ waiters: 0, queued: 0, told: 0, full: 0 });
    expect(sizes.revoked).toBeLessThanOrEqual(1_000);
  }, 180_000);

  it("an execution's log followers are removed when they end, woken or timed out", async () => {
    const jobId = await newJob("mem4");
    const id = await executionIn("mem4", jobId, "RUNNING");
    const after = await stub(id).eventCount();
    const followers = () => runInDurableObject(object(id), (o: Execution) => o.memorySizes().followers);
    // 1,000 followers waiting at once, all woken by one upload.
    const woken = Array.from({ length: 1_000 }, () => stub(id).logChunk(undefined, after, 1024, 20_000));
    for (let i = 0; i < 100 && (await followers()) < 1_000; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await followers()).toBe(1_000);
    await stub(id).uploadEvents(AGENT, { ...(await ref(id)), events: [{ seq: 1, timestamp: 1, event_type: "verbose", stdout: "hello\n" }] });
    expect((await Promise.all(woken)).every((c) => c.text === "hello\n")).toBe(true);
    expect(await followers()).toBe(0);
    // 1,000 more that time out, through the API (each request ends, and so does its follower).
    const t = await token(["mem4"], "viewer");
    await inParallel(Array.from({ length: 1_000 }), 50, async () => {
      const r = await stub(id).logChunk(undefined, after + 1, 1024, 10);
      expect(r.text).toBe("");
    });
    const viaApi = await api("GET", `/jobs/mem4/${jobId}/executions/${id}/log`, { token: t });
    expect(viaApi.status).toBe(200);
    expect(await followers()).toBe(0);
  }, 120_000);
});
