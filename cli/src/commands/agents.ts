// `runner agents ls`.
import type { Command } from "commander";
import type { Page } from "../api.ts";
import type { Agent } from "../api-types.ts";
import { type Act, enc, print } from "../core.ts";
import { statusColour, table, when } from "../output.ts";

export function registerAgents(program: Command, act: Act): void {
  const agents = program.command("agents").description("the account's agents");
  agents
    .command("ls")
    .description("agents: location, version, online, last seen, running executions")
    .option("--shared", "the shared pool's agents (operators only)")
    .action(
      act(async (ctx, o: { shared?: boolean }) => {
        const p = await ctx.api.json<Page<Agent>>("GET", o.shared ? "/minions/~shared" : `/minions/${enc(ctx.account)}`);
        print(
          ctx,
          p,
          () =>
            table(
              ["ID", "NAME", "LOCATION", "VERSION", "STATE", "LAST SEEN", "RUNNING"],
              p.results.map((a) => [
                a.id,
                a.name,
                a.location ?? "-",
                a.version ?? "-",
                statusColour(ctx.c, a.online ? "online" : "offline"),
                when(a.lastSeen),
                String(a.runningExecutions?.length ?? 0),
              ]),
              ctx.c,
            ) || ctx.c.dim("no agents\n"),
        );
      }),
    );
}
