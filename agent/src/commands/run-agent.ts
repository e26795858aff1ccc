// `runner-agent run`: settings and isolation checked once, then the agent until it is stopped.
import { chmod, mkdir } from "node:fs/promises";
import { Agent, EXIT } from "../agent.ts";
import { ApiClient } from "../api-client.ts";
import { ConfigError, resolveSettings } from "../config.ts";
import { checkTools } from "../preflight.ts";
import { VERSION } from "../version.ts";
import { chooseIsolation, defaultUidBase, ensureSlotUsers, probeIsolation, untraversableAncestors } from "../sandbox.ts";
import { agentIdOf, claimWorkDir } from "../state.ts";
import { prepareWorkRoot } from "../workspace.ts";
import type { AgentMetrics } from "../metrics.ts";
import { type CliIO, configProblem, dirsFor, loadFile, loggerFor } from "./common.ts";

export async function runCommand(flags: Record<string, unknown>, io: CliIO): Promise<number> {
  let file, s;
  try {
    file = await loadFile(flags, io);
    const problems: string[] = [];
    s = resolveSettings(
      [
        "url",
        "credential",
        "concurrency",
        "workDir",
        "stateDir",
        "shutdownGrace",
        "hostKeyChecking",
        "knownHosts",
        "ansiblePlaybook",
        "once",
        "isolation",
        "uidBase",
        "metricsListen",
        "logFormat",
        "logLevel",
      ],
      flags,
      io.env,
      file.data,
      [],
      problems,
    );
    if (!s.credential && !problems.some((p) => p.includes("RUNNER_CREDENTIAL"))) {
      problems.push(
        file.exists
          ? `${file.path} holds no credential: register the agent first (runner-agent register --url … --token …)`
          : `no config file at ${file.path}: register the agent first (runner-agent register --url … --token …), or give --config, or set RUNNER_CREDENTIAL and RUNNER_URL`,
      );
    }
    if (!s.url && !problems.some((p) => /--url|RUNNER_URL|"url"/.test(p))) problems.push("--url (or RUNNER_URL) is required: the Runner API base URL");
    if (s.knownHosts && s.hostKeyChecking !== "strict") problems.push("--known-hosts is only used with --host-key-checking strict");
    if (problems.length) throw new ConfigError(problems);
  } catch (err) {
    return configProblem(err, io, flags, file?.data);
  }
  const log = loggerFor(s, io);
  for (const w of file.warnings) log.warn(w);
  // Everything this agent keeps on disk is its own: a state directory per registration.
  const agentId = file.data.agentId ?? agentIdOf(s.credential) ?? "default";
  const { stateDir, workDir } = dirsFor(s, agentId, io.env);
  s.workDir = workDir;
  const choice = chooseIsolation(s.isolation ?? undefined, probeIsolation(s.workDir!), !!file.data.shared);
  if (!choice.ok) {
    log.error(`runner-agent will not run: ${choice.problem}`);
    return EXIT.ISOLATION;
  }
  if (choice.warning) log.warn(choice.warning);
  const uidBase = choice.perSlotUid ? (s.uidBase ?? defaultUidBase(s.workDir!)) : undefined;
  if (choice.level === "uid" && uidBase !== undefined) {
    for (const p of ensureSlotUsers(uidBase, s.concurrency ?? 1)) log.warn(`could not make the slot users system users (ssh needs them): ${p}`);
  }
  try {
    // With slot users the state directory is passed through (0711) on the way to the workspaces.
    await mkdir(stateDir, { recursive: true, mode: uidBase !== undefined ? 0o711 : 0o700 });
    if (uidBase !== undefined) await chmod(stateDir, 0o711);
    await prepareWorkRoot(s.workDir!, { traversable: uidBase !== undefined });
    const blocked = uidBase !== undefined ? untraversableAncestors(s.workDir!) : [];
    if (blocked.length) throw new Error(`the slot users cannot reach it through ${blocked.join(", ")} (chmod o+x, or choose another directory)`);
    const other = await claimWorkDir(s.workDir!, agentId);
    if (other) throw new Error(`it is in use by ${other}: give each agent its own (--work-dir or --state-dir)`);
  } catch (err) {
    return configProblem(new ConfigError([`--work-dir ${s.workDir} cannot hold workspaces: ${(err as Error).message}`]), io, flags, file.data);
  }
  const { tools, problems } = checkTools(s.ansiblePlaybook!);
  if (!tools) {
    for (const p of problems) log.error(p);
    return EXIT.CONFIG;
  }
  // Opt-in metrics: the protocol counters come from the client's fetch, the gauges from the agent.
  // eslint-disable-next-line prefer-const
  let agent: Agent | undefined;
  // prom-client is loaded only then: an agent without metrics does not carry it (resident memory).
  const metrics: AgentMetrics | undefined = s.metricsListen
    ? new (await import("../metrics.ts")).AgentMetrics({ running: () => agent?.running.length ?? 0, uploadBacklog: () => agent?.uploadBacklog ?? 0 })
    : undefined;
  const client = new ApiClient({ url: s.url!, credential: s.credential!, version: VERSION, fetch: metrics?.instrument() });
  agent = new Agent({
    client,
    concurrency: s.concurrency ?? 1,
    pollWaitMs: Math.min(25_000, file.data.pollWaitMs ?? 25_000),
    heartbeatIntervalMs: file.data.heartbeatIntervalMs ?? 5000,
    shutdownGraceMs: (s.shutdownGrace ?? 60) * 1000,
    once: !!s.once,
    // The config file holds the credential: masked inside the sandbox even where a bound tree holds it.
    isolation: { level: choice.level, uidBase, hide: file.exists ? [file.path] : [] },
    stateDir,
    executor: {
      workRoot: s.workDir!,
      ansiblePlaybook: s.ansiblePlaybook!,
      hostKeyChecking: s.hostKeyChecking ?? "off",
      knownHosts: s.knownHosts ?? undefined,
    },
    log,
  });
  log.info("agent started", {
    version: VERSION,
    agentId: file.data.agentId,
    url: s.url,
    concurrency: s.concurrency,
    ansible: tools.ansibleVersion,
    git: tools.gitVersion,
    workDir: s.workDir,
    isolation: choice.level,
    slotUids: uidBase !== undefined ? `${uidBase}-${uidBase + (s.concurrency ?? 1) - 1}` : undefined,
    pid: process.pid,
  });
  if (metrics) {
    try {
      const a = await metrics.listen(s.metricsListen!);
      log.info("serving metrics", { url: `http://${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}/metrics` });
    } catch (err) {
      return configProblem(new ConfigError([`--metrics-listen ${s.metricsListen}: cannot listen there: ${(err as Error).message}`]), io, flags, file.data);
    }
  }
  const removeHandlers = agent.installSignalHandlers();
  try {
    const code = await agent.run();
    log.info("agent stopped", { exitCode: code });
    return code;
  } catch (err) {
    log.error("agent failed", { error: err });
    return EXIT.ERROR;
  } finally {
    removeHandlers();
    await metrics?.close();
  }
}
