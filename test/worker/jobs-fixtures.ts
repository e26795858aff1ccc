/** Shared bodies for the jobs tests. */
export const b64 = (s: string) => btoa(s);
export const PLAYBOOK = b64("- hosts: all\n  gather_facts: false\n  tasks:\n    - ping:\n");
export const KEY_TEXT = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAtestonly\n-----END OPENSSH PRIVATE KEY-----\n";

export function playbookJob(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: "deploy", playbook: PLAYBOOK, hosts: [{ id: "web1", hostVars: { ansible_host: "10.0.0.1" } }], ...extra };
}

export function repoJob(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "from git",
    repository: { url: "https://git.example.com/ops/site.git", branch: "main", defaultPlaybook: "site.yml" },
    hosts: [{ id: "web1" }],
    ...extra,
  };
}
