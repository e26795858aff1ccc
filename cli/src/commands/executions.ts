// `runner start`, `logs`, `executions ls|show`, `stop`, `kill`, `restart`: executions and their logs.
import type { Command } from "commander";
import { stringify as toYaml } from "yaml";
import { ApiError, readSse, type Page } from "../api.ts";
import type { Execution } from "../api-types.ts";
import { type Act, type Ctx, enc, EXIT, EXIT_CODES, OUTCOME_EXIT, print, TERMINAL } from "../core.ts";
import { collect, parseProps, tags } from "../job-input.ts";
import { duration, statusColour, table, when } from "../output.ts";
import { resolveJob } from "./jobs.ts";

/** The job an execution belongs to: --job, else looked up in the account's executions (newest first). */
async function executionJob(ctx: Ctx, executionId: string, job?: string): Promise<string> {
  if (job) return (await resolveJob(ctx, job)).id as string;
  for (let page = 0; page < 20; page++) {
    const p = await ctx.api.json<Page<Execution>>("GET", `/jobs/${enc(ctx.account)}/executions?page=${page}&size=100`);
    const e = p.results.find((x) => x.execution_id === executionId);
    if (e) return e.job_id as string;
    if ((page + 1) * p.size >= p.totalSize) break;
  }
  throw new ApiError(`no execution ${executionId} among account ${ctx.account}'s latest 2000 executions (give --job JOB if it is older)`, 404);
}

const executionPath = (ctx: Ctx, jobId: string, executionId: string) => `/jobs/${enc(ctx.account)}/${enc(jobId)}/executions/${enc(executionId)}`;

/**
 * Streams an execution's log to `write` until it ends (reconnecting where it left off if the stream
 * drops) and answers its final status.
 */
async function follow(ctx: Ctx, jobId: string, executionId: string, write: (t: string) => void): Promise<string> {
  const path = executionPath(ctx, jobId, executionId);
  let lastId: string | undefined;
  for (let attempt = 0; ; attempt++) {
    let status: string | undefined;
    try {
      const res = await ctx.api.raw("GET", `${path}/log?follow=true`, {
        headers: { accept: "text/event-stream", ...(lastId ? { "last-event-id": lastId } : {}) },
      });
      await readSse(res, (e) => {
        if (e.id) lastId = e.id;
        if (e.event === "end") status = e.data.trim();
        else write(e.data);
      });
    } catch (err) {
      if (err instanceof ApiError && err.status !== 0 && err.status < 500) throw err;
      if (attempt >= 30) throw err;
    }
    if (status && TERMINAL.includes(status)) return status;
    // The stream ended without the end: the execution may have ended meanwhile, or the connection dropped.
    const e = await ctx.api.json<Execution>("GET", path);
    if (TERMINAL.includes(e.status)) {
      // Whatever was logged after the last piece we got.
      const rest = await ctx.api.raw("GET", `${path}/log${lastId ? `?after=${enc(lastId)}` : ""}`);
      write(await rest.text());
      return e.status as string;
    }
    await new Promise((r) => setTimeout(r, Math.min(5000, 500 * (attempt + 1))));
  }
}

async function followToExit(ctx: Ctx, jobId: string, executionId: string): Promise<number> {
  // With --json the log goes to stderr, so that stdout holds only the final execution.
  const write = ctx.json ? ctx.io.err : ctx.io.out;
  const status = await follow(ctx, jobId, executionId, write);
  const e = await ctx.api.json<Execution>("GET", executionPath(ctx, jobId, executionId));
  if (ctx.json) ctx.io.out(JSON.stringify(e, null, 2) + "\n");
  else ctx.io.err(`${ctx.c.dim("execution")} ${executionId} ${statusColour(ctx.c, status)}${e.reason && status !== "SUCCESS" ? ` (${e.reason})` : ""}\n`);
  return OUTCOME_EXIT[status] ?? EXIT.ERROR;
}

function executionRows(ctx: Ctx, list: Execution[]): string {
  return (
    table(
      ["EXECUTION", "JOB", "STATUS", "TRIGGER", "CREATED", "TOOK", "REASON"],
      list.map((e) => {
        const timers = (e.timers ?? []) as { start: number; end: number | null }[];
        const took = timers.reduce((n, t) => n + ((t.end ?? Date.now()) - t.start), 0);
        return [
          e.execution_id,
          e.job_id,
          statusColour(ctx.c, e.status),
          e.trigger ?? "-",
          when(e.created_time),
          timers.length ? duration(took) : "-",
          e.reason ?? "",
        ];
      }),
      ctx.c,
    ) || ctx.c.dim("no executions\n")
  );
}

export function registerExecutions(program: Command, act: Act): void {
  program
    .command("start <job>")
    .description("start a job (by id or name); --follow streams the log and exits with the outcome")
    .option("--prop <key=value>", "an extra var for this run (key:=json for JSON; repeat for more)", collect)
    .option("--tags <tags>", "playbook tags for this run, comma-separated")
    .option("--check", "a dry run (ansible-playbook --check)")
    .option("--diff", "show changes (ansible-playbook --diff)")
    .option("-f, --follow", "stream the log until the execution ends, and exit with its outcome (see the exit codes)")
    .addHelpText("after", `\n${EXIT_CODES}\n`)
    .action(
      act(async (ctx, ref: string, o: { prop?: string[]; tags?: string; check?: boolean; diff?: boolean; follow?: boolean }) => {
        const j = await resolveJob(ctx, ref);
        const body: Record<string, unknown> = {};
        if (o.prop?.length) body.properties = parseProps(o.prop);
        if (o.tags !== undefined) body.playbookTags = tags(o.tags);
        if (o.check) body.check = true;
        if (o.diff) body.diff = true;
        const e = await ctx.api.json<Execution>("POST", `/jobs/${enc(ctx.account)}/${enc(j.id)}/start`, body);
        if (!o.follow) {
          print(ctx, e, () => `${e.execution_id}\n`);
          return EXIT.OK;
        }
        if (!ctx.json) ctx.io.err(`${ctx.c.dim("execution")} ${e.execution_id} ${ctx.c.dim(`of job ${j.name ?? j.id}`)}\n`);
        return followToExit(ctx, j.id, e.execution_id);
      }),
    );

  program
    .command("logs <execution>")
    .description("an execution's log; -f follows it live until the execution ends (and exits with its outcome)")
    .option("-f, --follow", "follow until the execution ends")
    .option("--job <job>", "its job (found from the account's executions otherwise)")
    .action(
      act(async (ctx, id: string, o: { follow?: boolean; job?: string }) => {
        const jobId = await executionJob(ctx, id, o.job);
        if (o.follow) return followToExit(ctx, jobId, id);
        const res = await ctx.api.raw("GET", `${executionPath(ctx, jobId, id)}/log`);
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) ctx.io.out(Buffer.from(chunk).toString("utf8"));
      }),
    );

  const executions = program.command("executions").description("list and show executions");
  executions
    .command("ls")
    .description("the account's executions (or one job's), newest first")
    .option("--status <status>", "only those in this status (PENDING, RUNNING, SUCCESS, FAILURE, …)")
    .option("--job <job>", "only this job's")
    .option("--page <n>", "page (from 0)", "0")
    .option("--size <n>", "per page (1-100)", "100")
    .action(
      act(async (ctx, o: { status?: string; job?: string; page: string; size: string }) => {
        const base = o.job ? `/jobs/${enc(ctx.account)}/${enc((await resolveJob(ctx, o.job)).id)}/executions` : `/jobs/${enc(ctx.account)}/executions`;
        const q = new URLSearchParams({ page: o.page, size: o.size, ...(o.status ? { status: o.status.toUpperCase() } : {}) });
        const p = await ctx.api.json<Page<Execution>>("GET", `${base}?${q}`);
        print(ctx, p, () => executionRows(ctx, p.results));
      }),
    );
  executions
    .command("show <execution>")
    .description("one execution: status, timers, per-host results")
    .option("--job <job>", "its job (found from the account's executions otherwise)")
    .action(
      act(async (ctx, id: string, o: { job?: string }) => {
        const e = await ctx.api.json<Execution>("GET", executionPath(ctx, await executionJob(ctx, id, o.job), id));
        print(ctx, e, () => toYaml(e));
      }),
    );

  const action = (name: "stop" | "kill" | "restart", description: string) => {
    const cmd = program
      .command(`${name} <execution>`)
      .description(description)
      .option("--job <job>", "its job (found from the account's executions otherwise)");
    if (name === "stop") cmd.option("--expiry <seconds>", "kill it if it has not stopped after this long (0: never)");
    if (name === "restart") cmd.option("-f, --follow", "stream the log until it ends, and exit with its outcome");
    cmd.action(
      act(async (ctx, id: string, o: { job?: string; expiry?: string; follow?: boolean }) => {
        const jobId = await executionJob(ctx, id, o.job);
        const body = o.expiry !== undefined ? { expiryDuration: Number(o.expiry) } : undefined;
        const e = await ctx.api.json<Execution>("POST", `${executionPath(ctx, jobId, id)}/${name}`, body);
        if (o.follow) return followToExit(ctx, jobId, id);
        print(ctx, e, () => `${e.execution_id} ${statusColour(ctx.c, e.status)}\n`);
      }),
    );
  };
  action("stop", "stop an execution gracefully (the running task finishes)");
  action("kill", "kill an execution at once");
  action("restart", "run a FAILURE or INIT_FAILURE execution again, on its failed hosts");
}
