import { api, token } from "./helpers";

export const PASSWORD = "correct horse battery staple";

let n = 0;
/** A service account made through the API (by an admin of `accountAlias`); answers what the create answered. */
export async function newServiceAccount(accountAlias: string, body: { alias?: string; username?: string; password?: string; role?: string } = {}) {
  n++;
  const r = await api("POST", `/serviceAccounts/${accountAlias}`, {
    token: await token([accountAlias], "admin"),
    body: { alias: `sa-${n}`, username: `${accountAlias}-bot-${n}-${crypto.randomUUID().slice(0, 8)}`, password: PASSWORD, ...body },
  });
  if (r.status !== 200) throw new Error(`service account not created: ${r.status} ${r.text}`);
  return r.json as { id: string; accountAlias: string; alias: string; username: string; role: string; createdTime: number; lastUpdatedTime: number };
}

export const login = (username: string, password = PASSWORD) => api("POST", "/authentication/login", { token: null, body: { username, password } });

/** The bearer token of a fresh login (throws if the login does not succeed). */
export async function loginToken(username: string, password = PASSWORD): Promise<string> {
  const r = await login(username, password);
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
  return r.json.bearerToken as string;
}
