// Where `runner login` keeps its token: one 0600 JSON file per profile in
// $XDG_CONFIG_HOME/runner/ (default ~/.config/runner/), in a 0700 directory.
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

export interface Profile {
  url: string;
  token: string;
  username?: string;
  /** The account the login answered; commands act on it unless --account says otherwise. */
  account?: string;
  role?: string;
  /** Epoch ms. */
  expiresAt?: number;
}

export function configDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME?.startsWith("/") ? env.XDG_CONFIG_HOME : join(homedir(), ".config");
  return join(base, "runner");
}

export const PROFILE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export function profilePath(env: NodeJS.ProcessEnv, name: string): string {
  if (!PROFILE_NAME.test(name) || name.startsWith(".")) throw new Error(`the profile name must be 1-64 of A-Z a-z 0-9 _ . - (got ${JSON.stringify(name)})`);
  return join(configDir(env), `${name}.json`);
}

export async function readProfile(env: NodeJS.ProcessEnv, name: string): Promise<Profile | null> {
  const file = profilePath(env, name);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  // It holds a bearer token: only its owner may read it.
  const st = await stat(file);
  if ((st.mode & 0o077) !== 0) await chmod(file, 0o600).catch(() => {});
  const p = JSON.parse(text) as Profile;
  if (typeof p?.url !== "string" || typeof p?.token !== "string") throw new Error(`${file} is not a runner profile: run runner login again`);
  return p;
}

export async function writeProfile(env: NodeJS.ProcessEnv, name: string, p: Profile): Promise<string> {
  const file = profilePath(env, name);
  await mkdir(configDir(env), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(p, null, 2) + "\n", { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  return file;
}

export async function removeProfile(env: NodeJS.ProcessEnv, name: string): Promise<boolean> {
  const file = profilePath(env, name);
  try {
    await rm(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}
