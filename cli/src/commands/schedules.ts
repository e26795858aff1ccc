// `runner schedules ls|add|rm`: a job's schedules.
import type { Command } from "commander";
import type { Page } from "../api.ts";
import type { Schedule } from "../api-types.ts";
import { type Act, enc, print, UsageError } from "../core.ts";
import { table, when } from "../output.ts";
import { resolveJob } from "./jobs.ts";

export function registerSchedules(program: Command, act: Act): void {
  const schedules = program.command("schedules").description("a job's schedules: list, add, remove");
  schedules
    .command("ls <job>")
    .description("a job's schedules")
    .action(
      act(async (ctx, ref: string) => {
        const j = await resolveJob(ctx, ref);
        const p = await ctx.api.json<Page<Schedule>>("GET", `/jobs/${enc(ctx.account)}/${enc(j.id)}/schedules`);
        print(
          ctx,
          p,
          () =>
            table(
              ["ID", "TRIGGER", "TIMEZONE", "ENABLED", "NEXT RUN", "LAST RUN", "DESCRIPTION"],
              p.results.map((s) => [
                s.id,
                `${s.trigger?.type ?? "?"} ${s.trigger?.expression ?? ""}`,
                s.timezone ?? "UTC",
                s.enabled === false ? "no" : "yes",
                when(s.nextRunTime),
                when(s.lastRunTime),
                s.description ?? "",
              ]),
              ctx.c,
            ) || ctx.c.dim("no schedules\n"),
        );
      }),
    );
  schedules
    .command("add <job>")
    .description("start a job on a schedule, on behalf of a service account")
    .option("--cron <expression>", 'a 5-field cron expression (or @hourly, @daily, …), e.g. "0 3 * * *"')
    .option("--at <instant>", "once, at this ISO-8601 instant, e.g. 2030-01-01T03:00:00Z")
    .requiredOption("--service-account <alias>", "the service account it runs as")
    .requiredOption("--description <text>", "what it is for")
    .option("--timezone <iana>", "e.g. Europe/Paris (default UTC)")
    .option("--disabled", "create it disabled")
    .action(
      act(async (ctx, ref: string, o: { cron?: string; at?: string; serviceAccount: string; description: string; timezone?: string; disabled?: boolean }) => {
        if (!!o.cron === !!o.at) throw new UsageError("give one of --cron EXPRESSION or --at INSTANT");
        const j = await resolveJob(ctx, ref);
        const body: Record<string, unknown> = {
          description: o.description,
          serviceAccountAlias: o.serviceAccount,
          trigger: o.cron ? { type: "cron", expression: o.cron } : { type: "date", expression: o.at },
          ...(o.timezone ? { timezone: o.timezone } : {}),
          ...(o.disabled ? { enabled: false } : {}),
        };
        const s = await ctx.api.json<Schedule>("POST", `/jobs/${enc(ctx.account)}/${enc(j.id)}/schedules`, body);
        print(ctx, s, () => `${s.id}${s.nextRunTime ? ` ${ctx.c.dim("next run")} ${when(s.nextRunTime)}` : ""}\n`);
      }),
    );
  schedules
    .command("rm <job> <schedule>")
    .description("remove a schedule")
    .action(
      act(async (ctx, ref: string, scheduleId: string) => {
        const j = await resolveJob(ctx, ref);
        await ctx.api.json("DELETE", `/jobs/${enc(ctx.account)}/${enc(j.id)}/schedules/${enc(scheduleId)}`);
        print(ctx, { id: scheduleId, deleted: true }, () => `${scheduleId} deleted\n`);
      }),
    );
}
