import { it } from "vitest";
import { lease, newAgent, newExecution, newJob } from "./agent-fixtures";
it("measure", async () => {
  const a = await newAgent("m");
  const j = await newJob("m");
  for (let i = 0; i < 10; i++) await newExecution("m", j);
  let t = Date.now();
  for (let i = 0; i < 10; i++) await lease(a, 1000);
  console.log(`sequential lease of queued work: ${(Date.now() - t) / 10} ms per lease`);
  t = Date.now();
  for (let i = 0; i < 20; i++) await lease(a, 0);
  console.log(`empty poll (waitMs 0): ${(Date.now() - t) / 20} ms each`);
});
