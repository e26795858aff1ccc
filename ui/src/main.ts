// The Runner dashboard: Preact + htm, routed by the URL fragment (#/jobs/…), every call to the
// API of the same origin with the token kept in sessionStorage.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { can, onSessionChange, session, signOut } from "./api";
import { currentRoute, href, html } from "./components";
import { Agents } from "./pages/agents";
import { Audit } from "./pages/audit";
import { Execution } from "./pages/execution";
import { Executions } from "./pages/executions";
import { Inventory } from "./pages/inventory";
import { Job } from "./pages/job";
import { JobForm } from "./pages/job-form";
import { Jobs } from "./pages/jobs";
import { SignIn } from "./pages/signin";

function useRoute(): string[] {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const on = () => setRoute(currentRoute());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

function useSession() {
  const [s, set] = useState(session);
  useEffect(() => onSessionChange(() => set(session())), []);
  return s;
}

function page(route: string[]) {
  const [top, a, b, c] = route;
  switch (top) {
    case undefined:
    case "jobs":
      if (a === undefined) return { title: "Jobs", nav: "jobs", view: html`<${Jobs} />` };
      if (a === "new") return { title: "New job", nav: "jobs", view: html`<${JobForm} />` };
      if (b === "edit") return { title: "Edit job", nav: "jobs", view: html`<${JobForm} jobId=${a} />` };
      if (b === "executions" && c) return { title: "Execution", nav: "jobs", view: html`<${Execution} jobId=${a} executionId=${c} />` };
      return { title: "Job", nav: "jobs", view: html`<${Job} jobId=${a} />` };
    case "executions":
      return { title: "Executions", nav: "executions", view: html`<${Executions} />` };
    case "agents":
      return { title: "Agents", nav: "agents", view: html`<${Agents} />` };
    case "inventory":
      return { title: "Inventory", nav: "inventory", view: html`<${Inventory} />` };
    case "audit":
      // Admins only (the API answers 403 to anyone else); the link is not shown to other roles.
      return {
        title: "Audit",
        nav: "audit",
        view: can("admin")
          ? html`<${Audit} />`
          : html`<section><div class="page-head"><h1 tabindex="-1">Audit</h1></div><div class="empty">The audit log is for admins.</div></section>`,
      };
    default:
      return { title: "Not found", nav: "", view: html`<div class="empty">No such page. <a href="#/jobs">Go to the jobs</a>.</div>` };
  }
}

function App() {
  const s = useSession();
  const route = useRoute();
  const p = page(route);
  useEffect(() => {
    document.title = s ? `${p.title} · Runner` : "Sign in · Runner";
  }, [p.title, s]);
  // Move focus to the page's heading on navigation, for keyboard and screen-reader users.
  useEffect(() => {
    document.querySelector<HTMLElement>("main h1")?.focus({ preventScroll: true });
  }, [route.join("/")]);
  if (!s) return html`<${SignIn} />`;
  const link = (name: string, label: string) => html`<li><a href=${href(name)} aria-current=${p.nav === name ? "page" : undefined}>${label}</a></li>`;
  return html`<a class="skip" href="#main" onClick=${(e: Event) => {
    e.preventDefault();
    document.getElementById("main")?.focus();
  }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/jobs">Runner</a>
      <nav aria-label="Main"><ul>${link("jobs", "Jobs")}${link("executions", "Executions")}${link("agents", "Agents")}${link("inventory", "Inventory")}${can("admin") ? link("audit", "Audit") : null}</ul></nav>
      <div class="who" data-testid="who">
        <span class="account" title="Account">${s.account}</span>
        <span class="user" title="Signed in as">${s.who}</span>
        <span class=${`role role-${s.role}`} data-testid="role">${s.operator ? `operator ${s.role}` : s.role}</span>
        <a href="/docs" class="small">API</a>
        <button type="button" class="small" onClick=${() => signOut("Signed out.")}>Sign out</button>
      </div>
    </header>
    <main id="main" tabindex="-1">${p.view}</main>`;
}

render(html`<${App} />`, document.getElementById("app")!);
