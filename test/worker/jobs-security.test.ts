import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/app";
import { loadJobForLease } from "../../worker/domain/jobs";
import { decryptJson, decryptSecret, encryptJson, encryptSecret, SecretsError, secretKeyId } from "../../worker/lib/secrets";
import { api, token } from "./helpers";
import { b64, playbookJob } from "./jobs-fixtures";

const ALIAS = "secure";
const auth = () => token([ALIAS], "user");

function rawKey(): string {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...b));
}

// Distinctive secret texts; the API takes keys as base64, so both forms are searched for.
const JOB_KEY = "JOB-PRIVATE-KEY-3f9a1c";
const HOST_KEY = "HOST-PRIVATE-KEY-77b2e0";
const REPO_KEY = "REPO-PRIVATE-KEY-c41d88";
const REPO_PASSWORD = "repo-password-5e6f7a-secret";
const needles = [JOB_KEY, HOST_KEY, REPO_KEY, REPO_PASSWORD, b64(JOB_KEY), b64(HOST_KEY), b64(REPO_KEY), b64(REPO_PASSWORD)];

function expectNoSecrets(text: string, where: string) {
  for (const n of needles) expect(text.includes(n), `${where} contains a secret`).toBe(false);
}

const secretJob = () =>
  playbookJob({
    sshPrivateKey: b64(JOB_KEY),
    hosts: [{ id: "web1", sshPrivateKey: b64(HOST_KEY) }, { id: "web2" }],
  });
const secretRepoJob = () => ({
  name: "repo",
  repository: {
    url: "https://h.example/r.git",
    defaultPlaybook: "site.yml",
    credentials: { username: "bot", password: REPO_PASSWORD, sshPrivateKey: b64(REPO_KEY) },
  },
  hosts: [{ id: "web1", sshPrivateKey: b64(HOST_KEY) }],
  sshPrivateKey: b64(JOB_KEY),
});

describe("secrets never leave (security)", () => {
  it("are absent from the raw text of create, get, list and put answers", async () => {
    const t = await auth();
    const texts: [string, string][] = [];
    for (const body of [secretJob(), secretRepoJob()]) {
      const created = await api("POST", `/jobs/${ALIAS}`, { token: t, body });
      expect(created.status).toBe(200);
      texts.push(["create", created.text]);
      const got = await api("GET", `/jobs/${ALIAS}/${created.json.id}`, { token: t });
      texts.push(["get", got.text]);
      const put = await api("PUT", `/jobs/${ALIAS}/${created.json.id}`, { token: t, body: { ...got.json, name: "changed" } });
      expect(put.status).toBe(200);
      texts.push(["put", put.text]);
      const putNew = await api("PUT", `/jobs/${ALIAS}/${created.json.id}`, { token: t, body });
      texts.push(["put with secrets", putNew.text]);
      // The flags say a secret is there, so the searches above are searching a job that has them.
      expect(put.json.hasSshPrivateKey).toBe(true);
      expect(put.json.hosts[0].hasSshPrivateKey).toBe(true);
      const immediate = await api("POST", `/jobs/${ALIAS}?immediate=true`, { token: t, body });
      texts.push(["create immediate", immediate.text]);
    }
    texts.push(["list", (await api("GET", `/jobs/${ALIAS}`, { token: t })).text]);
    texts.push(["list page", (await api("GET", `/jobs/${ALIAS}?page=0&size=1`, { token: t })).text]);
    texts.push(["openapi", (await api("GET", "/openapi.json", { token: null })).text]);
    for (const [where, text] of texts) expectNoSecrets(text, where);
  });

  it("are not echoed by validation errors", async () => {
    const r = await api("POST", `/jobs/${ALIAS}`, {
      token: await auth(),
      body: {
        ...secretJob(),
        sshPrivateKey: `${JOB_KEY}!!`,
        hosts: [{ id: "", sshPrivateKey: `${HOST_KEY}**` }],
        repository: { credentials: { password: 5 } },
      },
    });
    expect(r.status).toBe(400);
    expectNoSecrets(r.text, "400");
  });

  it("are stored encrypted: the D1 row holds none of them in any form", async () => {
    const t = await auth();
    const created = await api("POST", `/jobs/${ALIAS}`, { token: t, body: secretRepoJob() });
    const row = await env.DB.prepare("SELECT * FROM jobs WHERE id = ?").bind(created.json.id).first<Record<string, unknown>>();
    expect(row).not.toBeNull();
    expectNoSecrets(JSON.stringify(row), "D1 row");
    expect(String(row!.secrets)).toMatch(/^v1\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    // …and they are in there: the lease view decrypts exactly what was given.
    const lease = await loadJobForLease(env, ALIAS, created.json.id);
    expect(lease?.sshPrivateKey).toBe(b64(JOB_KEY));
    expect(lease?.repository?.credentials).toEqual({ username: "bot", password: REPO_PASSWORD, sshPrivateKey: b64(REPO_KEY) });
    expect(lease?.hosts[0]?.sshPrivateKey).toBe(b64(HOST_KEY));
  });

  it("a job without secrets stores no ciphertext", async () => {
    const created = await api("POST", `/jobs/${ALIAS}`, { token: await auth(), body: playbookJob() });
    const row = await env.DB.prepare("SELECT secrets FROM jobs WHERE id = ?").bind(created.json.id).first<{ secrets: string | null }>();
    expect(row?.secrets).toBeNull();
  });
});

describe("secrets.ts (security)", () => {
  const k1 = `old:${rawKey()}`;
  const k2 = `new:${rawKey()}`;

  it("round-trips text and JSON, with a fresh IV each time", async () => {
    const e = { RUNNER_SECRETS_KEY: k1 };
    const a = await encryptSecret(e, "héllo ✓");
    const b = await encryptSecret(e, "héllo ✓");
    expect(a).not.toBe(b);
    expect(secretKeyId(a)).toBe("old");
    expect(await decryptSecret(e, a)).toBe("héllo ✓");
    expect(await decryptJson(e, await encryptJson(e, { k: [1, "x"] }))).toEqual({ k: [1, "x"] });
    expect(await decryptSecret(e, await encryptSecret(e, ""))).toBe("");
  });

  it("rotates: the first key encrypts, every listed key decrypts", async () => {
    const oldCt = await encryptSecret({ RUNNER_SECRETS_KEY: k1 }, "from before");
    const rotated = { RUNNER_SECRETS_KEY: `${k2}, ${k1}` };
    expect(await decryptSecret(rotated, oldCt)).toBe("from before");
    const newCt = await encryptSecret(rotated, "after");
    expect(secretKeyId(newCt)).toBe("new");
    expect(await decryptSecret({ RUNNER_SECRETS_KEY: k2 }, newCt)).toBe("after");
    // Once the old key is dropped, its data no longer decrypts: a clear error naming the key id only.
    const err = await decryptSecret({ RUNNER_SECRETS_KEY: k2 }, oldCt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretsError);
    expect((err as Error).message).toContain("'old'");
    expect((err as Error).message).not.toContain("from before");
  });

  it("rejects tampered, relabelled, truncated and malformed ciphertexts with SecretsError", async () => {
    const e = { RUNNER_SECRETS_KEY: `${k1},${k2}` };
    const ct = await encryptSecret(e, "top secret value");
    const [v, kid, iv, body] = ct.split(".") as [string, string, string, string];
    const flip = (s: string) => (s[0] === "A" ? "B" : "A") + s.slice(1);
    const bad = [
      `${v}.${kid}.${iv}.${flip(body)}`,
      `${v}.${kid}.${flip(iv)}.${body}`,
      `${v}.new.${iv}.${body}`, // relabelled to another listed key: the key id is authenticated data
      `${v}.${kid}.${iv}.${body.slice(0, 10)}`,
      `${v}.${kid}.${iv}`,
      `v2.${kid}.${iv}.${body}`,
      `${v}.nokey.${iv}.${body}`,
      `${v}.${kid}.${iv}.${body}$$`,
      "",
      "plain text",
    ];
    for (const c of bad) {
      const err = await decryptSecret(e, c).catch((x: unknown) => x);
      expect(err, c).toBeInstanceOf(SecretsError);
      expect((err as Error).message).not.toContain("top secret");
    }
  });

  it("rejects a missing or malformed key configuration without echoing key material", async () => {
    const material = rawKey();
    for (const conf of ["", "   ", material, `:${material}`, `k1:${btoa("short")}`, `k1:${material},k1:${material}`, "k1:***", `bad kid:${material}`]) {
      const err = await encryptSecret({ RUNNER_SECRETS_KEY: conf }, "x").catch((x: unknown) => x);
      expect(err, conf).toBeInstanceOf(SecretsError);
      expect((err as Error).message).not.toContain(material);
    }
  });

  it("re-encrypts a stored job under the new key on PUT, and the job survives dropping the old key", async () => {
    const t = await auth();
    const created = await api("POST", `/jobs/${ALIAS}`, { token: t, body: secretJob() });
    const stored = () => env.DB.prepare("SELECT secrets FROM jobs WHERE id = ?").bind(created.json.id).first<{ secrets: string }>();
    expect(secretKeyId((await stored())!.secrets)).toBe("k1");

    const rotatedEnv = { ...env, RUNNER_SECRETS_KEY: `${k2},${env.RUNNER_SECRETS_KEY}` };
    const res = await app.request(
      `/jobs/${ALIAS}/${created.json.id}`,
      {
        method: "PUT",
        body: JSON.stringify({ ...created.json, name: "rotated" }),
        headers: { "content-type": "application/json", authorization: `Bearer ${t}` },
      },
      rotatedEnv,
    );
    expect(res.status).toBe(200);
    expect(secretKeyId((await stored())!.secrets)).toBe("new");
    const lease = await loadJobForLease({ ...env, RUNNER_SECRETS_KEY: k2 }, ALIAS, created.json.id);
    expect(lease?.sshPrivateKey).toBe(b64(JOB_KEY));
    expect(lease?.hosts[0]?.sshPrivateKey).toBe(b64(HOST_KEY));
  });

  it("answers a clean 500 (no values) when the stored key is no longer configured", async () => {
    const t = await auth();
    const created = await api("POST", `/jobs/${ALIAS}`, { token: t, body: secretJob() });
    const res = await app.request(
      `/jobs/${ALIAS}/${created.json.id}`,
      { method: "PUT", body: JSON.stringify(created.json), headers: { "content-type": "application/json", authorization: `Bearer ${t}` } },
      { ...env, RUNNER_SECRETS_KEY: k2 },
    );
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).toContain("RUNNER_SECRETS_KEY");
    expectNoSecrets(text, "500");
    // Reads need no key at all: they never decrypt.
    const got = await app.request(`/jobs/${ALIAS}/${created.json.id}`, { headers: { authorization: `Bearer ${t}` } }, { ...env, RUNNER_SECRETS_KEY: k2 });
    expect(got.status).toBe(200);
  });
});
