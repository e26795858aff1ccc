// `runner jobs ls|show|create|edit|rm`.
import type { Command } from "commander";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { ApiError, type Page } from "../api.ts";
import type { Execution, Job, JobWithExecution } from "../api-types.ts";
import { type Act, type Ctx, enc, EXIT, print, UsageError } from "../core.ts";
import { applyJobFlags, type JobFlags, jobOptions, openEditor, READ_ONLY, readJobFile } from "../job-input.ts";
import { statusColour, table, when } from "../output.ts";

export /** A job by id, or by its exact name. */
async function resolveJob(ctx: Ctx, ref: string): Promise<Job> {
  try {
    return await ctx.api.json<Job>("GET", `/jobs/${enc(ctx.account)}/${enc(ref)}`);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
  const found: Job[] = [];
  for (let page = 0; page < 20; page++) {
    const p = await ctx.api.json<Page<Job>>("GET", `/jobs/${enc(ctx.account)}?page=${page}&size=100`);
    found.push(...p.results.filter((j) => j.name === ref));
    if ((page + 1) * p.size >= p.totalSize) break;
  }
  if (found.length === 1) return found[0]!;
  if (found.length > 1) throw new UsageError(`${found.length} jobs are named ${JSON.stringify(ref)}: give the id (${found.map((j) => j.id).join(", ")})`);
  throw new ApiError(`no job ${JSON.stringify(ref)} in account ${ctx.account} (neither an id nor a name)`, 404);
}

function jobSource(j: Job): string {
  if (j.repository?.url) return `${j.repository.url}${j.repository.branch ? `@${j.repository.branch}` : ""}:${j.repository.defaultPlaybook ?? ""}`;
  return "inline";
}

export function registerJobs(program: Command, act: Act): void {
  const jobs = program.command("jobs").description("list, show, create, edit and remove jobs");
  jobs
    .command("ls")
    .description("the account's jobs, newest first")
    .option("--page <n>", "page (from 0)", "0")
    .option("--size <n>", "per page (1-100)", "100")
    .action(
      act(async (ctx, o: { page: string; size: string }) => {
        const p = await ctx.api.json<Page<Job>>("GET", `/jobs/${enc(ctx.account)}?page=${enc(o.page)}&size=${enc(o.size)}`);
        print(
          ctx,
          p,
          () =>
            table(
              ["ID", "NAME", "PLAYBOOK", "HOSTS", "UPDATED"],
              p.results.map((j) => [
                j.id,
                j.name ?? "",
                jobSource(j),
                j.useDynamicInventory ? "inventory" : String(j.hosts?.length ?? 0),
                when(j.lastUpdatedTime),
              ]),
              ctx.c,
            ) || ctx.c.dim("no jobs\n"),
        );
      }),
    );
  jobs
    .command("show <job>")
    .description("one job (by id or name), secrets shown only as has… flags")
    .action(
      act(async (ctx, ref: string) => {
        const j = await resolveJob(ctx, ref);
        print(ctx, j, () => toYaml(j));
      }),
    );
  jobOptions(jobs.command("create").description("create a job from flags or a YAML/JSON file"))
    .option("--start", "start it at once (prints the execution)")
    .action(
      act(async (ctx, o: JobFlags & { start?: boolean }) => {
        const body = applyJobFlags(o.file ? readJobFile(o.file) : {}, o);
        const j = await ctx.api.json<JobWithExecution>("POST", `/jobs/${enc(ctx.account)}?immediate=${o.start ? "true" : "false"}`, body);
        // The schema leaves `execution` open (a record); it is the execution started.
        const x = j.execution as Execution | undefined;
        print(ctx, j, () => `${j.id}${x ? `\n${ctx.c.dim("execution")} ${x.execution_id} ${statusColour(ctx.c, x.status)}` : ""}\n`);
      }),
    );
  jobOptions(jobs.command("edit <job>").description("change a job: flags change those fields, --file replaces the definition; neither: $EDITOR")).action(
    act(async (ctx, ref: string, o: JobFlags) => {
      const current = await resolveJob(ctx, ref);
      let body: Record<string, unknown>;
      const flagged = Object.entries(o).some(([k, v]) => k !== "file" && v !== undefined);
      if (o.file) body = applyJobFlags(readJobFile(o.file), o);
      else if (flagged) body = applyJobFlags(current, o);
      else {
        const editable = Object.fromEntries(Object.entries(current).filter(([k]) => !READ_ONLY.includes(k) && !k.startsWith("has")));
        const text = `# Job ${current.id}: saved when you quit; secrets the file leaves out are kept.\n${toYaml(editable)}`;
        const edited = openEditor(ctx.io, text);
        if (edited === text) {
          ctx.io.err("no change\n");
          return EXIT.OK;
        }
        const v = parseYaml(edited) as unknown;
        if (!v || typeof v !== "object") throw new UsageError("the edited job must be a mapping of its fields");
        body = v as Record<string, unknown>;
      }
      const j = await ctx.api.json<Job>("PUT", `/jobs/${enc(ctx.account)}/${enc(current.id)}`, body);
      print(ctx, j, () => `${j.id} updated\n`);
    }),
  );
  jobs
    .command("rm <job>")
    .description("delete a job (and its schedules); refused while one of its executions is active")
    .action(
      act(async (ctx, ref: string) => {
        const j = await resolveJob(ctx, ref);
        await ctx.api.json("DELETE", `/jobs/${enc(ctx.account)}/${enc(j.id)}`);
        print(ctx, { id: j.id, deleted: true }, () => `${j.id} deleted\n`);
      }),
    );
}
