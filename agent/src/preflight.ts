// What the agent needs on its machine, checked once at start: ansible-core >= 2.14 and git.
import { spawnSync } from "node:child_process";
import { childEnv } from "./ansible-env.ts";

export interface Tools {
  ansibleVersion: string;
  gitVersion: string;
}

export function checkTools(ansiblePlaybook: string): { tools?: Tools; problems: string[] } {
  const problems: string[] = [];
  const env = childEnv();
  const a = spawnSync(ansiblePlaybook, ["--version"], { encoding: "utf8", env, timeout: 30_000 });
  let ansibleVersion = "";
  if (a.error) {
    problems.push(
      (a.error as NodeJS.ErrnoException).code === "ENOENT"
        ? `${ansiblePlaybook} was not found: install ansible-core >= 2.14 (e.g. apt-get install ansible-core) or point --ansible-playbook at it`
        : `${ansiblePlaybook} --version failed: ${a.error.message}`,
    );
  } else {
    const m = /core ([0-9]+)\.([0-9]+)(\.[0-9]+)?/.exec(a.stdout ?? "");
    if (a.status !== 0 || !m) problems.push(`${ansiblePlaybook} --version did not work: ${(a.stderr || a.stdout || "").trim().slice(0, 300)}`);
    else if (Number(m[1]) < 2 || (Number(m[1]) === 2 && Number(m[2]) < 14)) problems.push(`ansible-core ${m[1]}.${m[2]} is too old: 2.14 or newer is needed`);
    else ansibleVersion = `${m[1]}.${m[2]}${m[3] ?? ""}`;
  }
  const g = spawnSync("git", ["--version"], { encoding: "utf8", env, timeout: 10_000 });
  let gitVersion = "";
  if (g.error || g.status !== 0) problems.push("git was not found: install git (the agent clones job repositories with it)");
  else gitVersion = (g.stdout ?? "").trim().replace(/^git version /, "");
  return problems.length ? { problems } : { tools: { ansibleVersion, gitVersion }, problems };
}
