import { useState } from "preact/hooks";
import { api, ApiError, jwtClaims, signIn, takeNotice, type Role, type Session } from "../api";
import type { LoginAnswer } from "../api-types";
import { Field, html, inputValue, ProblemBanner } from "../components";

const ROLES: Role[] = ["viewer", "user", "admin"];

export function SignIn() {
  const [mode, setMode] = useState<"login" | "token">("login");
  const [notice] = useState(takeNotice);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [token, setToken] = useState("");
  const [account, setAccount] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const claims = token.trim() ? jwtClaims(token.trim()) : null;
  const accounts = claims?.accounts;
  const tokenAccounts = Array.isArray(accounts) ? (accounts as string[]) : [];
  const operator = accounts === "*";

  const login = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await api<LoginAnswer>("POST", "/authentication/login", { username, password }, { token: "" });
      const c = jwtClaims(r.bearerToken);
      const role = (r.roles?.[0] ?? c?.role ?? "viewer") as Role;
      signIn({
        token: r.bearerToken,
        account: r.accountAlias,
        role,
        who: r.userName ?? username,
        operator: false,
        expiresAt: typeof r.expiresIn === "number" ? Date.now() + r.expiresIn * 1000 : null,
      });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const useToken = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const t = token.trim();
    if (!claims)
      return setError(
        new ApiError(400, {
          title: "Not a token",
          detail: "Paste a Runner token (a JWT: three parts separated by dots).",
          errors: [{ field: "token", message: "is not a JWT" }],
        }),
      );
    const alias = (account.trim() || (tokenAccounts.length === 1 ? tokenAccounts[0] : "")) ?? "";
    if (!alias)
      return setError(
        new ApiError(400, {
          title: "Which account?",
          detail: "This token names several accounts (or all of them): type the account alias.",
          errors: [{ field: "account", message: "is required for this token" }],
        }),
      );
    const role = ROLES.includes(claims.role as Role) ? (claims.role as Role) : "viewer";
    setBusy(true);
    try {
      // One cheap read checks that the token is good for the account (401: bad token; 404: not its account).
      await api("GET", `/jobs/${encodeURIComponent(alias)}?size=1`, undefined, { token: t });
      const s: Session = {
        token: t,
        account: alias,
        role,
        who: String(claims.sub ?? "token"),
        operator,
        expiresAt: typeof claims.exp === "number" ? claims.exp * 1000 : null,
      };
      signIn(s);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404)
        setError(
          new ApiError(404, {
            title: "No such account",
            detail: `This token cannot act on account "${alias}".`,
            errors: [{ field: "account", message: "is not an account of this token" }],
          }),
        );
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return html`<main class="signin" id="main">
    <h1>Runner</h1>
    <p class="muted">Jobs, live runs and agents for Ansible.</p>
    ${notice ? html`<p class="notice" role="status">${notice}</p>` : null}
    <div class="tabs" role="tablist" aria-label="How to sign in">
      <button type="button" role="tab" id="tab-login" aria-selected=${mode === "login"} aria-controls="panel-login" onClick=${() => {
        setMode("login");
        setError(null);
      }}>Service account</button>
      <button type="button" role="tab" id="tab-token" aria-selected=${mode === "token"} aria-controls="panel-token" onClick=${() => {
        setMode("token");
        setError(null);
      }}>Token</button>
    </div>
    ${
      mode === "login"
        ? html`<form id="panel-login" role="tabpanel" aria-labelledby="tab-login" onSubmit=${login} class="card">
          <${ProblemBanner} error=${error} fields=${["username", "password"]} />
          <${Field} label="Username" id="username" error=${error} field="username">
            <input id="username" name="username" autocomplete="username" required value=${username} onInput=${(e: Event) => setUsername(inputValue(e))} />
          <//>
          <${Field} label="Password" id="password" error=${error} field="password">
            <input id="password" name="password" type="password" autocomplete="current-password" required value=${password} onInput=${(e: Event) => setPassword(inputValue(e))} />
          <//>
          <button type="submit" class="primary" disabled=${busy}>${busy ? "Signing in…" : "Sign in"}</button>
        </form>`
        : html`<form id="panel-token" role="tabpanel" aria-labelledby="tab-token" onSubmit=${useToken} class="card">
          <${ProblemBanner} error=${error} fields=${["token", "account"]} />
          <${Field} label="Token" id="token" error=${error} field="token" hint="A bearer token (npm run --silent token -- <account> prints one for local development).">
            <textarea id="token" rows="4" class="mono" autocomplete="off" spellcheck="false" required value=${token} onInput=${(e: Event) => setToken(inputValue(e))}></textarea>
          <//>
          <${Field} label="Account" id="account" error=${error} field="account" hint=${operator ? "An operator token: name the account to work in." : tokenAccounts.length > 1 ? `One of: ${tokenAccounts.join(", ")}` : "Taken from the token when it names one account."}>
            <input id="account" autocomplete="off" placeholder=${tokenAccounts.length === 1 ? tokenAccounts[0] : "acme"} value=${account} onInput=${(e: Event) => setAccount(inputValue(e))} />
          <//>
          <button type="submit" class="primary" disabled=${busy}>${busy ? "Checking…" : "Use this token"}</button>
        </form>`
    }
    <p class="muted small">The token is kept in this tab only (sessionStorage) and dropped when you sign out. <a href="/docs">API reference</a></p>
  </main>`;
}
