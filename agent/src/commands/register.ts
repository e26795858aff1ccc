// `runner-agent register`: a registration token (or an operator token) exchanged for a credential, saved 0600.
import { hostname } from "node:os";
import { EXIT } from "../agent.ts";
import { ApiClient, ApiError } from "../api-client.ts";
import { ConfigError, resolveSettings, writeConfigFile, type ConfigFile } from "../config.ts";
import { Backoff, sleep } from "../retry.ts";
import { VERSION } from "../version.ts";
import { type CliIO, configProblem, loadFile, loggerFor } from "./common.ts";

export async function registerCommand(flags: Record<string, unknown>, io: CliIO): Promise<number> {
  let file, s;
  try {
    file = await loadFile(flags, io);
    // The file is the destination here; what it already holds (a re-registration with --force)
    // fills in what neither flags nor environment give. Never its credential.
    const problems: string[] = [];
    const { url, name, location, concurrency, logFormat, logLevel } = file.data;
    s = resolveSettings(
      ["url", "token", "operatorToken", "name", "location", "concurrency", "force", "logFormat", "logLevel"],
      flags,
      io.env,
      { url, name, location, concurrency, logFormat, logLevel },
      ["url"],
      problems,
    );
    if (!s.token && !s.operatorToken)
      problems.push("--token (or RUNNER_TOKEN) is required: the registration token; or --operator-token for a shared-pool agent");
    if (s.token && s.operatorToken) problems.push("give either --token or --operator-token, not both");
    if (file.data.credential && !s.force) {
      problems.push(`${file.path} already holds a registration (agent ${file.data.agentId ?? "?"}): use --force to replace it, or --config for another file`);
    }
    if (problems.length) throw new ConfigError(problems);
  } catch (err) {
    return configProblem(err, io, flags, file?.data);
  }
  const log = loggerFor(s, io);
  for (const w of file.warnings) log.warn(w);
  const client = new ApiClient({ url: s.url!, version: VERSION });
  const body = {
    ...(s.token ? { token: s.token } : {}),
    name: s.name!,
    location: s.location ?? null,
    version: VERSION,
    hostname: hostname(),
    concurrency: s.concurrency ?? 1,
  };
  const backoff = new Backoff({ initialMs: 500, maxMs: 4000 });
  for (let attempt = 1; ; attempt++) {
    try {
      const a = await client.register(body, s.operatorToken ?? undefined);
      const data: ConfigFile = {
        url: s.url!,
        agentId: a.agentId,
        credential: a.credential,
        accountAlias: a.accountAlias ?? null,
        shared: !!a.shared,
        name: s.name!,
        location: a.location ?? s.location ?? null,
        concurrency: s.concurrency ?? 1,
        leaseTtlMs: a.leaseTtlMs,
        heartbeatIntervalMs: a.heartbeatIntervalMs,
        pollWaitMs: a.pollWaitMs,
        registeredAt: Date.now(),
      };
      await writeConfigFile(file.path, data);
      const scope = a.shared ? "the shared pool" : `account ${a.accountAlias}`;
      const where = data.location ? `, location ${data.location}` : "";
      log.info("agent registered", { agentId: a.agentId, account: a.accountAlias ?? "(shared)", location: data.location ?? undefined, config: file.path });
      io.out(
        `Registered agent ${data.name} (${a.agentId}) for ${scope}${where}.\nCredential saved in ${file.path}.\nStart it with: runner-agent run${flags.config ? ` --config ${file.path}` : ""}\n`,
      );
      return EXIT.OK;
    } catch (err) {
      const e = ApiError.from(err);
      if (!e.retryable) {
        const why =
          e.status === 401 || e.status === 403
            ? s.operatorToken
              ? "the API refused the operator token (expired, or not an admin token for all accounts)"
              : "the API refused the registration token (revoked, or mistyped)"
            : `the API refused the registration: ${e.problem?.detail ?? e.message}`;
        log.error(why, { status: e.status });
        return EXIT.REJECTED;
      }
      if (attempt >= 4) {
        log.error(`could not reach the API at ${s.url}`, { error: e.message });
        return EXIT.ERROR;
      }
      const delay = e.retryAfterMs ?? backoff.next();
      log.warn("registration failed; retrying", { error: e.message, retryInMs: delay });
      await sleep(delay);
    }
  }
}
