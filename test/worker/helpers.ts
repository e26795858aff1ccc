import { env, SELF } from "cloudflare:test";
import { signToken, type Principal } from "../../worker/lib/auth";

/** A Runner token for tests, signed by the same code and key as real ones. */
export function token(accounts: string[] | "*" = ["acme"], role: Principal["role"] = "admin", sub = "tester") {
  return signToken(env, { sub, accounts, role });
}

/** Calls the Worker through its real fetch handler. */
export async function api(method: string, path: string, opts: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...opts.headers };
  const t = opts.token === undefined ? await token() : opts.token;
  if (t) headers.authorization = `Bearer ${t}`;
  let body: BodyInit | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
    headers["content-type"] ??= "application/json";
  }
  const res = await SELF.fetch(`http://runner.test${path}`, { method, headers, body });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}
