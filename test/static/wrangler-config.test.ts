// Settings that live both in wrangler.toml and in code, checked to agree.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const toml = readFileSync("wrangler.toml", "utf8");
const source = readFileSync("worker/callbacks.ts", "utf8");

/** The `[[queues.consumers]]` block of `queue`, as key → raw value. */
function consumer(queue: string): Record<string, string> {
  for (const block of toml.split(/^\[\[queues\.consumers\]\]\s*$/m).slice(1)) {
    const body = block.split(/^\[/m)[0]!;
    const keys = Object.fromEntries([...body.matchAll(/^(\w+)\s*=\s*(.+?)\s*$/gm)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, "")]));
    if (keys.queue === queue) return keys;
  }
  return {};
}

describe("wrangler.toml and the code agree", () => {
  it("the webhook consumer's max_retries is worker/callbacks.ts's MAX_RETRIES (the last attempt is recorded as failed there)", () => {
    const inCode = /export const MAX_RETRIES = (\d+);/.exec(source)?.[1];
    expect(inCode).toBeDefined();
    expect(consumer("runner-callbacks").max_retries).toBe(inCode);
    expect(consumer("runner-callbacks").dead_letter_queue).toBe("runner-callbacks-dlq");
  });
});
