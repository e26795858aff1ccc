// The module structure's two rules (docs/DESIGN.md, "Layout"): no import loop, and a Durable
// Object's file (`*.do.ts`) is imported by worker/index.ts alone; everyone else goes through
// domain/contracts.ts and the clients.
import { describe, expect, it } from "vitest";
import { cycles, importGraph, sourceFiles } from "./import-graph";

describe("import graph", () => {
  const graph = importGraph(sourceFiles(["worker", "agent/src", "agent/bin", "agent/test", "test", "scripts", "bench"]));

  it("reads the tree (the checks below are not vacuous)", () => {
    expect(graph.get("worker/index.ts")).toContain("worker/execution/execution.do.ts");
    expect(graph.get("worker/domain/execution-client.ts")).toContain("worker/domain/contracts.ts");
    expect(graph.size).toBeGreaterThan(100);
  });

  it("finds a loop where there is one", () => {
    const g = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["a"]],
      ["d", ["d"]],
      ["e", ["a"]],
    ]);
    expect(cycles(g)).toEqual([["a", "b", "c"], ["d"]]);
  });

  it("has no import loop", () => {
    expect(cycles(graph)).toEqual([]);
  });

  it("imports a .do.ts file only from worker/index.ts", () => {
    const offenders = [...graph].flatMap(([file, deps]) => deps.filter((d) => d.endsWith(".do.ts") && file !== "worker/index.ts").map((d) => `${file} → ${d}`));
    expect(offenders).toEqual([]);
  });

  it("keeps the worker and the agent apart (the agent is its own package)", () => {
    const crossing = [...graph].flatMap(([file, deps]) =>
      deps
        .filter((d) => (file.startsWith("agent/src/") && !d.startsWith("agent/src/")) || (file.startsWith("worker/") && d.startsWith("agent/")))
        .map((d) => `${file} → ${d}`),
    );
    expect(crossing).toEqual([]);
  });
});
