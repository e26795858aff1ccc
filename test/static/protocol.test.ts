// The agent's protocol types (agent/src/protocol.ts) are generated from the worker's zod schemas
// (through /openapi.json): this test fails when they differ. After changing an agent-facing
// schema, `npm run protocol` writes the file again (and the agent's compiler says what to adapt).
import { describe, expect, it } from "vitest";
import { app } from "../../worker/app";
import { protocolModule, type JsonSchema } from "./protocol-types";

/** The components the agent uses: the agent protocol's bodies and answers (docs/agent-protocol.md). */
const AGENT_SIDE = ["AgentRegister", "AgentRegistration", "LeaseRequest", "Lease", "LeaseRef", "AgentAnswer", "StatusReport", "EventUpload"];

const HEADER = `// The agent protocol's shapes (docs/agent-protocol.md), generated from the worker's zod schemas
// (GET /openapi.json) by test/static/protocol.test.ts: do not edit; \`npm run protocol\` writes it.
// agent/src/types.ts names what the agent uses of them.
`;

describe("protocol types", () => {
  it("agent/src/protocol.ts is what the worker's schemas say", async () => {
    const doc = (await (await app.request("/openapi.json")).json()) as { components: { schemas: Record<string, JsonSchema> } };
    const text = protocolModule(doc.components.schemas, AGENT_SIDE, HEADER);
    expect(text).toContain("export type Lease = {");
    await expect(text).toMatchFileSnapshot("../../agent/src/protocol.ts");
  });
});
