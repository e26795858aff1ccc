// The job splitter (worker/domain/job-split.ts): a body into the stored definition and the
// secrets, with the replace rules (an omitted secret is kept, an explicit null removes it).
import { describe, expect, it } from "vitest";
import { isEmpty, split } from "../../worker/domain/job-split";
import type { JobInput, JobReplace } from "../../worker/schemas/job";

const body = (b: Record<string, unknown>) => b as JobInput & JobReplace;

describe("job split", () => {
  it("takes every secret out of the definition, leaving has… flags", () => {
    const { definition, secrets } = split(
      body({
        name: "deploy",
        repository: { url: "https://git.example.com/r.git", defaultPlaybook: "site.yml", credentials: { username: "u", password: "pw", sshPrivateKey: "rk" } },
        hosts: [
          { id: "web1", sshPrivateKey: "hk" },
          { id: "web2", hostVars: { a: 1 } },
        ],
        sshPrivateKey: "jk",
      }),
    );
    expect(secrets).toEqual({ sshPrivateKey: "jk", repository: { password: "pw", sshPrivateKey: "rk" }, hosts: [{ id: "web1", sshPrivateKey: "hk" }] });
    expect(definition.repository).toEqual({
      url: "https://git.example.com/r.git",
      branch: null,
      defaultPlaybook: "site.yml",
      credentials: { username: "u", hasPassword: true, hasSshPrivateKey: true },
    });
    expect(definition.hosts).toEqual([
      { id: "web1", hostVars: {}, hasSshPrivateKey: true },
      { id: "web2", hostVars: { a: 1 }, hasSshPrivateKey: false },
    ]);
    expect(definition.hasSshPrivateKey).toBe(true);
    // The values, quoted: "rk" is also inside a field name (forks).
    expect(JSON.stringify(definition)).not.toMatch(/"(pw|rk|hk|jk)"/);
  });

  it("fills the defaults", () => {
    const { definition, secrets } = split(body({ playbook: "LS0tCg==", callbacks: [{ url: "https://hook.example.com" }] }));
    expect(definition).toMatchObject({
      name: null,
      description: null,
      executionTtl: 180,
      playbookTags: [],
      hosts: [],
      properties: {},
      useDynamicInventory: false,
      location: null,
      repository: null,
    });
    expect(definition.callbacks).toEqual([{ url: "https://hook.example.com", level: "DEBUG" }]);
    expect(isEmpty(secrets)).toBe(true);
  });

  it("drops an inline playbook when a repository is given, and an empty repository", () => {
    const both = split(body({ playbook: "LS0tCg==", repository: { url: "https://g/r.git", defaultPlaybook: "a.yml" } }));
    expect(both.definition.playbook).toBeNull();
    expect(both.definition.repository?.credentials).toBeNull();
    expect(split(body({ playbook: "LS0tCg==", repository: {} })).definition).toMatchObject({ playbook: "LS0tCg==", repository: null });
  });

  it("on replace keeps an omitted secret, removes an explicit null, and matches host secrets by id", () => {
    const stored = {
      sshPrivateKey: "jk",
      repository: { password: "pw", sshPrivateKey: "rk" },
      hosts: [
        { id: "web1", sshPrivateKey: "hk1" },
        { id: "web2", sshPrivateKey: "hk2" },
      ],
    };
    const { definition, secrets } = split(
      body({
        repository: { url: "https://g/r.git", defaultPlaybook: "a.yml", credentials: { username: "u", password: null } },
        hosts: [{ id: "web2" }, { id: "web3", sshPrivateKey: "hk3" }, { id: "web1", sshPrivateKey: null }],
      }),
      stored,
    );
    expect(secrets).toEqual({
      sshPrivateKey: "jk",
      repository: { sshPrivateKey: "rk" },
      hosts: [
        { id: "web2", sshPrivateKey: "hk2" },
        { id: "web3", sshPrivateKey: "hk3" },
      ],
    });
    expect(definition.repository?.credentials).toEqual({ username: "u", hasPassword: false, hasSshPrivateKey: true });
    expect(definition.hosts.map((h) => h.hasSshPrivateKey)).toEqual([true, true, false]);
  });

  it("on replace, credentials: null removes the repository's secrets, and a null job key removes it", () => {
    const stored = { sshPrivateKey: "jk", repository: { password: "pw" } };
    const { secrets, definition } = split(
      body({ sshPrivateKey: null, repository: { url: "https://g/r.git", defaultPlaybook: "a.yml", credentials: null } }),
      stored,
    );
    expect(isEmpty(secrets)).toBe(true);
    expect(definition.hasSshPrivateKey).toBe(false);
    expect(definition.repository?.credentials).toBeNull();
  });

  it("on create, nothing is kept from anywhere", () => {
    expect(isEmpty(split(body({ playbook: "LS0tCg==", hosts: [{ id: "a" }] })).secrets)).toBe(true);
  });
});
