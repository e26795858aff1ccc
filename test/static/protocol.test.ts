// The agent's protocol types (agent/src/protocol.ts) and the public API's answer types of the
// dashboard and the CLI (ui/src/api-types.ts, cli/src/api-types.ts) are generated from the
// worker's zod schemas (through /openapi.json): this test fails when they differ. After changing a
// schema, `npm run protocol` writes the files again (and the compilers say what to adapt).
import { describe, expect, it } from "vitest";
import { app } from "../../worker/app";
import { protocolModule, type JsonSchema } from "./protocol-types";

/** The components the agent uses: the agent protocol's bodies and answers (docs/agent-protocol.md). */
const AGENT_SIDE = ["AgentRegister", "AgentRegistration", "LeaseRequest", "Lease", "LeaseRef", "AgentAnswer", "StatusReport", "EventUpload"];

const HEADER = `// The agent protocol's shapes (docs/agent-protocol.md), generated from the worker's zod schemas
// (GET /openapi.json) by test/static/protocol.test.ts: do not edit; \`npm run protocol\` writes it.
// agent/src/types.ts names what the agent uses of them.
`;

/** The public API's answers that the dashboard and the CLI read. */
const PUBLIC_ANSWERS = [
  "LoginAnswer",
  "Job",
  "JobPage",
  "JobWithExecution",
  "Execution",
  "ExecutionPage",
  "StatusEvent",
  "StatusEventPage",
  "Schedule",
  "SchedulePage",
  "Agent",
  "AgentPage",
  "RegistrationToken",
  "RegistrationTokenPage",
  "CreatedRegistrationToken",
  "Inventory",
  "ServiceAccount",
  "ServiceAccountList",
  "Delivery",
  "DeliveryPage",
];

const publicHeader = (who: string) => `// The public API's answers as ${who} reads them, generated from the worker's zod schemas
// (GET /openapi.json) by test/static/protocol.test.ts: do not edit; \`npm run protocol\` writes it.
`;

describe("protocol types", () => {
  const schemas = async () =>
    ((await (await app.request("/openapi.json")).json()) as { components: { schemas: Record<string, JsonSchema> } }).components.schemas;

  it("agent/src/protocol.ts is what the worker's schemas say", async () => {
    const text = protocolModule(await schemas(), AGENT_SIDE, HEADER);
    expect(text).toContain("export type Lease = {");
    await expect(text).toMatchFileSnapshot("../../agent/src/protocol.ts");
  });

  it("the dashboard's and the CLI's api-types.ts are what the worker's schemas say", async () => {
    const s = await schemas();
    const ui = protocolModule(s, PUBLIC_ANSWERS, publicHeader("the dashboard (ui/)"));
    expect(ui).toContain("export type Execution = {");
    await expect(ui).toMatchFileSnapshot("../../ui/src/api-types.ts");
    await expect(protocolModule(s, PUBLIC_ANSWERS, publicHeader("the runner CLI (cli/)"))).toMatchFileSnapshot("../../cli/src/api-types.ts");
  });
});
