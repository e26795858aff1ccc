// The seeded inputs of test/worker/routes-fuzz.test.ts's first round: random values and bodies
// under the routes' own field names, bodies no route takes, poisons, query strings.
import { seeded } from "./fuzz-fixtures";

export const KEYS = [
  "hosts",
  "id",
  "groups",
  "hostVars",
  "attempt",
  "status",
  "events",
  "seq",
  "timestamp",
  "event_type",
  "stdout",
  "data",
  "failedHosts",
  "hostStats",
  "reason",
  "detail",
  "repositoryLog",
  "expiryDuration",
  "sshPrivateKey",
  "properties",
  "playbookTags",
  "check",
  "diff",
  "token",
  "name",
  "location",
  "version",
  "hostname",
  "concurrency",
  "capacity",
  "waitMs",
  "running",
  "description",
  "__proto__",
  "constructor",
] as const;

export const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "",
];

/**
 * Fields each kind of body must refuse, applied last over random fields, so a body sent where a
 * clean one could change the kept state never can (unknown fields alone are ignored, not refused).
 */
export const POISON: Record<"start" | "inventory" | "agent" | "lease", Record<string, unknown>[]> = {
  start: [{ check: "yes" }, { hosts: "web1" }, { properties: [] }, { playbookTags: "deploy" }, { sshPrivateKey: 5 }],
  inventory: [{ hosts: "web1" }, { hosts: [{ id: "" }] }, { hosts: [{ id: "a" }, { id: "a" }] }, { hosts: [{ id: "a", groups: ["all"] }] }, { hosts: null }],
  agent: [{ attempt: 0 }, { attempt: "1" }, { events: {} }, { attempt: 1, status: "DONE" }, { attempt: 1, reason: "Not Snake" }],
  // A valid lease poll would be held open: the only clean one asks for nothing (capacity 0).
  lease: [{ capacity: -1 }, { waitMs: "soon" }, { waitMs: -5 }, { capacity: 0 }],
};

/** The generators over one seeded stream: the same seed replays the same requests. */
export function routeInputs(seed: number) {
  const { int, pick, chance, randomString } = seeded(seed, { longStrings: 0.03 });
  function randomValue(depth = 0): unknown {
    switch (int(depth > 3 ? 6 : 8)) {
      case 0:
        return null;
      case 1:
        return chance(0.5);
      case 2:
        return pick([0, -1, 1, 2, 1.5, 1e308, -1e308, 2 ** 53 + 1, 25_000, 1_000_000]);
      case 3:
      case 4:
        return randomString();
      case 5:
        return pick(["", "RUNNING", "SUCCESS", "KILLED", "web1", "all", "ungrouped", "runner_on_ok", "rrt_x", "__proto__"]);
      case 6:
        return Array.from({ length: int(4) }, () => randomValue(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let i = int(4); i > 0; i--) o[chance(0.6) ? pick(KEYS) : randomString(10)] = randomValue(depth + 1);
        return o;
      }
    }
  }

  function poisoned(kind: keyof typeof POISON): string {
    const body: Record<string, unknown> = {};
    for (let i = int(4); i > 0; i--) body[pick(KEYS)] = randomValue();
    return JSON.stringify(Object.assign(body, pick(POISON[kind])));
  }

  /** Bodies no route takes: not JSON, or JSON that is not an object. */
  function rawBody(): string | Uint8Array {
    switch (int(6)) {
      case 0:
        return Uint8Array.from({ length: 1 + int(200) }, () => int(256));
      case 1:
        return `${pick(["{", "[", '"', "x"])}${randomString(200)}`;
      case 2:
        return "[".repeat(30000) + "]".repeat(30000);
      case 3:
        return JSON.stringify(pick([null, 5, "text", [1, 2], true, [{ hosts: [] }]]));
      case 4: {
        const whole = JSON.stringify({ hosts: [{ id: "a" }], attempt: 1, events: [] });
        return whole.slice(0, 1 + int(whole.length - 1)); // cut short
      }
      default:
        return `{"attempt": 1, "events": [${"{".repeat(5)}`;
    }
  }

  function randomQuery(): string {
    const parts: string[] = [];
    for (let i = int(4); i > 0; i--) {
      const k = pick(["page", "size", "status", "after", "follow", randomString(5), "page[]"]);
      const v = pick(["0", "1", "100", "101", "-1", "x", "", "1e2", "true", "RUNNING", "SUCCESS", "99999999999999999999", encodeURIComponent(randomString(6))]);
      parts.push(`${encodeURIComponent(k)}=${v}`);
    }
    return parts.length ? `?${parts.join("&")}` : "";
  }

  return { int, pick, chance, randomString, randomValue, poisoned, rawBody, randomQuery };
}
