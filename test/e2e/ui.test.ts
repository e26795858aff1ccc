// The dashboard in a real browser (Debian's chromium, headless, driven by puppeteer-core) against
// the real stack: wrangler dev serving /ui and /docs from Workers Static Assets, and a real agent
// running ansible-playbook (test/e2e/ui-fixtures.ts). Screenshots go to test/artifacts/ui/ (gitignored).
import { join } from "node:path";
import type { Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error plain ESM helper shared with the scripts
import { gzippedSize, JS_BUDGET_BYTES } from "../../scripts/build-ui.mjs";
import { b64, isTerminal, sleep } from "./stack";
import { ARTIFACTS, clickText, Dashboard, fill, playbook, shot, statusOf, text } from "./ui-fixtures";

const A = "acme";
// The README's screenshot is refreshed only when asked (UPDATE_README_SHOT=1), so a test run
// leaves the tree as it found it; every run saves its own under test/artifacts/.
const README_SHOT = process.env.UPDATE_README_SHOT ? join(import.meta.dirname, "..", "..", "docs", "execution.png") : join(ARTIFACTS, "execution-readme.png");
const LOCAL = { ansible_connection: "local", ansible_python_interpreter: "/usr/bin/python3" };
const USER = { alias: "ui-user", username: "acme-ui", password: "a long dashboard passphrase", role: "user" };

const ui = new Dashboard();
const { stack, consoleErrors, newPage, go } = ui;
let page: Page;
let admin: string;

beforeAll(async () => {
  await ui.start();
  admin = await stack.token([A], "admin");
  const sa = await stack.call("POST", `/serviceAccounts/${A}`, admin, USER);
  expect(sa.status, sa.text).toBe(200);
  page = await newPage();
});

afterAll(async () => {
  await ui.stop();
});

describe("the dashboard in a browser", () => {
  it("is small: the app's JavaScript is under 150 KB gzipped", () => {
    const size = gzippedSize("ui/app.js");
    console.log(`dashboard JavaScript: ${(size / 1024).toFixed(1)} KB gzipped (budget ${JS_BUDGET_BYTES / 1024} KB)`);
    expect(size).toBeLessThan(JS_BUDGET_BYTES);
  });

  it("signs in with a service account and shows the account and its role", async () => {
    await page.goto(`${stack.url}/`, { waitUntil: "networkidle0" });
    expect(page.url()).toBe(`${stack.url}/ui/`);
    await page.waitForSelector("#username");
    await page.type("#username", USER.username);
    await page.type("#password", "not the password at all");
    await page.keyboard.press("Enter");
    await page.waitForSelector(".problem");
    expect(await text(page, ".problem")).toMatch(/Unauthorized/);
    await fill(page, "#password", USER.password);
    await page.keyboard.press("Enter");
    await page.waitForSelector("[data-testid=who]");
    expect(await text(page, "[data-testid=who] .account")).toBe(A);
    expect(await text(page, "[data-testid=who] .user")).toBe(USER.username);
    expect(await text(page, "[data-testid=role]")).toBe("user");
    expect(await page.evaluate(() => JSON.parse(sessionStorage.getItem("runner.session")!).role)).toBe("user");
    await page.waitForSelector(".empty");
    expect(await text(page, ".empty")).toContain("No jobs yet — create one");
    await shot(page, "jobs-empty");
  }, 60_000);

  let jobId = "";
  let executionPath = "";
  const description = `Deploys things <script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> & more`;

  it("creates a job with an inline playbook; its <script> description renders as text", async () => {
    await page.click('a[href="#/jobs/new"]');
    await page.waitForSelector("#job-name");
    await fill(page, "#job-name", "hello from the browser");
    await fill(page, "#job-description", description);
    await fill(
      page,
      "#job-playbook",
      playbook(
        "    - name: first\n      ansible.builtin.debug:\n        msg: hello from the dashboard\n" +
          "    - name: wait a little\n      ansible.builtin.command: sleep 3\n" +
          "    - name: change something\n      ansible.builtin.command: echo changed\n" +
          "    - name: last\n      ansible.builtin.debug:\n        msg: done\n",
      ),
    );
    // The form starts with localhost and local connection vars; a first try with a bad TTL shows the API's detail by the field.
    await fill(page, "#job-ttl", "0");
    await clickText(page, "button", "Create job");
    await page.waitForSelector("#job-ttl-error");
    expect(await text(page, "#job-ttl-error")).toMatch(/at least 1/);
    await shot(page, "job-form-error");
    await fill(page, "#job-ttl", "30");
    await clickText(page, "button", "Create job");
    await page.waitForSelector("[data-testid=job-description]");
    jobId = decodeURIComponent(page.url().split("#/jobs/")[1]!);
    expect(jobId).toMatch(/\S/);
    expect(await text(page, "[data-testid=job-description]")).toBe(description);
    expect(await page.$$eval("[data-testid=job-description] *", (els) => els.length)).toBe(0);
    expect(await page.evaluate(() => (window as any).__pwned)).toBeUndefined();
    expect(await text(page, "[data-testid=job-name]")).toBe("hello from the browser");
    // The job list shows it, found by search.
    await page.goto(`${stack.url}/ui/#/jobs`);
    await fill(page, "#job-search", "browser");
    await page.waitForFunction(() => document.querySelector("table[aria-label=Jobs]")?.textContent?.includes("hello from the browser"));
    await shot(page, "jobs");
  }, 60_000);

  it("starts it, shows log lines live before it ends, then SUCCESS, the host table and the tasks", async () => {
    await go(page, `#/jobs/${encodeURIComponent(jobId)}`, "[data-testid=start]");
    await page.click("[data-testid=start]");
    await page.waitForSelector("[data-testid=execution-status]");
    // A line of the log is on the page while the execution still runs (sleep 3 is still to come).
    let liveLine = false;
    const until = Date.now() + 60_000;
    while (Date.now() < until) {
      const [log, status] = await Promise.all([text(page, "[data-testid=log] pre"), statusOf(page)]);
      if (log.includes("hello from the dashboard") && status && !isTerminal({ status })) {
        liveLine = true;
        break;
      }
      if (status && isTerminal({ status })) break;
      await sleep(100);
    }
    expect(liveLine, "a log line before the end").toBe(true);
    await shot(page, "execution-running");
    await page.waitForFunction(() => document.querySelector("[data-testid=execution-status] [data-status]")?.getAttribute("data-status") === "SUCCESS", {
      timeout: 60_000,
    });
    await page.waitForSelector("[data-testid=host-table]");
    const hostRow = await page.$eval("[data-testid=host-table] tbody tr", (tr) => [...tr.children].map((c) => c.textContent?.trim()));
    expect(hostRow[0]).toBe("localhost");
    expect(Number(hostRow[1])).toBeGreaterThan(0); // ok
    expect(hostRow[3]).toBe("0"); // failed
    await page.waitForFunction(() => (document.querySelector("[data-testid=task-table]")?.textContent ?? "").includes("last"));
    const tasks = await page.$$eval("[data-testid=task-table] tbody tr", (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent?.trim())));
    expect(tasks.map((t) => t[0])).toEqual(["first", "wait a little", "change something", "last"]);
    expect(tasks[1]![1]).toMatch(/^[3-9]\.\d s$/); // sleep 3 took about 3 s
    await page.waitForFunction(() => document.querySelector("[data-testid=log-state]")?.textContent === "complete");
    expect(await text(page, "[data-testid=log] pre")).toContain("PLAY RECAP");
    // Ended: Stop and Kill are disabled, Restart only for FAILURE.
    for (const b of ["stop", "kill", "restart"]) expect(await page.$eval(`[data-testid=${b}]`, (el) => (el as HTMLButtonElement).disabled), b).toBe(true);
    executionPath = new URL(page.url()).hash.slice(1); // /jobs/{jobId}/executions/{executionId}
    await page.evaluate(() => document.querySelector("[data-testid=log]")?.scrollTo(0, 0));
    await shot(page, "execution");
    await page.screenshot({ path: README_SHOT as `${string}.png`, fullPage: false });
  }, 120_000);

  it("the same log for a terminal: ?follow=true answers plain text unless text/event-stream is asked for", async () => {
    const [, , job, , exec] = executionPath.split("/");
    const url = `${stack.url}/jobs/${A}/${job}/executions/${exec}/log?follow=true`;
    const plain = await fetch(url, { headers: { authorization: `Bearer ${admin}`, accept: "*/*" } });
    expect(plain.headers.get("content-type")).toContain("text/plain");
    const body = await plain.text();
    expect(body).toContain("hello from the dashboard");
    expect(body).not.toMatch(/^data:/m);
    const sse = await fetch(url, { headers: { authorization: `Bearer ${admin}`, accept: "text/event-stream" } });
    expect(sse.headers.get("content-type")).toContain("text/event-stream");
    expect(await sse.text()).toMatch(/^event: end\ndata: SUCCESS$/m);
  });

  it("pauses auto-scroll when the reader scrolls up", async () => {
    const long = await stack.call("POST", `/jobs/${A}`, admin, {
      name: "chatty",
      playbook: b64(
        playbook(
          '    - name: lines\n      ansible.builtin.debug:\n        msg: "line {{ item }}"\n      loop: "{{ range(1, 201) | list }}"\n' +
            "    - name: more\n      ansible.builtin.command: sleep 1\n      loop: [1, 2, 3, 4, 5]\n",
        ),
      ),
      hosts: [{ id: "localhost", hostVars: LOCAL }],
    });
    const x = await stack.call("POST", `/jobs/${A}/${long.json.id}/start`, admin);
    await go(page, `#/jobs/${long.json.id}/executions/${x.json.execution_id}`, "[data-testid=log]");
    await page.waitForFunction(() => (document.querySelector("[data-testid=log] pre")?.textContent ?? "").includes("line 200"), { timeout: 60_000 });
    const atEnd = () => page.$eval("[data-testid=log]", (b) => b.scrollHeight - b.scrollTop - b.clientHeight < 30);
    expect(await atEnd()).toBe(true);
    await page.$eval("[data-testid=log]", (b) => b.scrollTo(0, 0));
    await page.waitForSelector("[data-testid=log-resume]");
    await page.waitForFunction(() => (document.querySelector("[data-testid=log] pre")?.textContent ?? "").includes("(item=2)"), { timeout: 30_000 });
    expect(await page.$eval("[data-testid=log]", (b) => b.scrollTop)).toBe(0); // stayed where the reader put it
    await page.click("[data-testid=log-resume]");
    expect(await atEnd()).toBe(true);
    await stack.waitFor(A, long.json.id, x.json.execution_id, admin, isTerminal);
  }, 90_000);

  it("stops a long run: STOPPING, then STOPPED", async () => {
    const tasks = Array.from({ length: 20 }, (_, i) => `    - name: step ${i + 1}\n      ansible.builtin.command: sleep 2\n`).join("");
    const r = await stack.call("POST", `/jobs/${A}`, admin, { name: "long", playbook: b64(playbook(tasks)), hosts: [{ id: "localhost", hostVars: LOCAL }] });
    expect(r.status, r.text).toBe(200);
    await go(page, `#/jobs/${r.json.id}`, "[data-testid=start]");
    await page.click("[data-testid=start]");
    await page.waitForFunction(() => (document.querySelector("[data-testid=log] pre")?.textContent ?? "").includes("step 1"), { timeout: 60_000 });
    // The status is polled (1.5 s), the log streamed: the status may follow the log a little.
    await page.waitForFunction(() => document.querySelector("[data-testid=execution-status] [data-status]")?.getAttribute("data-status") === "RUNNING", {
      timeout: 10_000,
    });
    expect(await page.$eval("[data-testid=restart]", (el) => (el as HTMLButtonElement).disabled)).toBe(true);
    const seen: string[] = [];
    const watch = (async () => {
      const until = Date.now() + 60_000;
      while (Date.now() < until) {
        const s = await statusOf(page);
        if (s && seen.at(-1) !== s) seen.push(s);
        if (s === "STOPPED" || s === "KILLED") return;
        await sleep(50);
      }
    })();
    await fill(page, "#stop-expiry", "60");
    await page.click("[data-testid=stop]");
    await watch;
    expect(seen).toEqual(["RUNNING", "STOPPING", "STOPPED"]);
    for (const b of ["stop", "kill"]) expect(await page.$eval(`[data-testid=${b}]`, (el) => (el as HTMLButtonElement).disabled), b).toBe(true);
    await shot(page, "execution-stopped");
  }, 120_000);

  it("edits a job: a secret is shown only as set / not set, kept when untouched, replaced or removed", async () => {
    const r = await stack.call("POST", `/jobs/${A}`, admin, {
      name: "edit me",
      playbook: b64(playbook("    - ansible.builtin.ping:\n")),
      hosts: [{ id: "web1" }],
      forks: 20,
    });
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n";
    await go(page, `#/jobs/${r.json.id}/edit`, "#host-0-id");
    expect(await text(page, "[data-testid=job-key-state]")).toBe("not set");
    await clickText(page, "button", "Set"); // the first "Set": host 1's key
    await fill(page, "#host-0-key", key);
    await fill(page, "#job-name", "edited");
    await clickText(page, "button", "Save");
    await page.waitForFunction(() => document.querySelector("[data-testid=job-name]")?.textContent === "edited");
    expect(await text(page, "main")).toContain("key set");
    expect(await text(page, "main")).not.toContain("not-a-real-key");
    const stored = await stack.call("GET", `/jobs/${A}/${r.json.id}`, admin);
    expect(stored.json.hosts[0].hasSshPrivateKey).toBe(true);
    expect(stored.json.forks).toBe(20); // a field the form shows is saved back as it was
    expect(stored.text).not.toContain("not-a-real-key");
    // Saved again untouched: the key stays; then removed.
    await go(page, `#/jobs/${r.json.id}/edit`, "#host-0-id");
    expect(await text(page, "[data-testid=host-0-key-state]")).toBe("set");
    await clickText(page, "button", "Save");
    await page.waitForSelector("[data-testid=job-name]");
    expect((await stack.call("GET", `/jobs/${A}/${r.json.id}`, admin)).json.hosts[0].hasSshPrivateKey).toBe(true);
    await go(page, `#/jobs/${r.json.id}/edit`, "#host-0-id");
    await clickText(page, "button", "Remove");
    expect(await text(page, "[data-testid=host-0-key-state]")).toBe("will be removed");
    await clickText(page, "button", "Save");
    await page.waitForSelector("[data-testid=job-name]");
    expect((await stack.call("GET", `/jobs/${A}/${r.json.id}`, admin)).json.hosts[0].hasSshPrivateKey).toBe(false);
    // Deleted from its page (the confirmation is accepted).
    await clickText(page, "button", "Delete");
    await page.waitForSelector("#job-search");
    expect((await stack.call("GET", `/jobs/${A}/${r.json.id}`, admin)).status).toBe(404);
  }, 60_000);

  it("shows agents with the concurrency they run with, and registration tokens shown once", async () => {
    // The e2e agent registered without --concurrency (1) and runs with --concurrency 4.
    const shared = await stack.call("GET", "/minions/~shared", await stack.token("*"));
    expect(shared.json.results[0].concurrency).toBe(4);
    await go(page, "#/agents", "#tokens-h");
    await page.waitForFunction(() => document.querySelectorAll("main .empty").length === 2);
    expect(await text(page, "main")).toContain("No agents of this account yet");
    expect(await text(page, "main")).toContain("No registration tokens.");
    // A user may not create tokens: the form is for admins (this session is a user's).
    expect(await page.$("form.token-form button[type=submit]")).toBeNull();
    await shot(page, "agents-user");
  }, 30_000);

  it("a user does not see the Audit link, and the page says it is for admins", async () => {
    await go(page, "#/jobs");
    await page.waitForSelector("nav[aria-label=Main] a");
    const links = await page.$$eval("nav[aria-label=Main] a", (els) => els.map((e) => e.textContent?.trim()));
    expect(links).toEqual(["Jobs", "Executions", "Agents", "Inventory"]);
    await go(page, "#/audit");
    expect(await text(page, "main")).toContain("The audit log is for admins.");
    expect(await page.$("[data-testid=audit-table]")).toBeNull();
  }, 30_000);

  it("an admin sees the Audit page: what this test just did, newest first, who did it, filterable by resource", async () => {
    const ADMIN = { alias: "ui-admin", username: "acme-ui-admin", password: "an admin's dashboard passphrase", role: "admin" };
    const sa = await stack.call("POST", `/serviceAccounts/${A}`, admin, ADMIN);
    expect(sa.status, sa.text).toBe(200);
    const hostile = `audited <img src=x onerror="window.__pwned = 3"><script>window.__pwned = 4</script>`;
    const job = await stack.call("POST", `/jobs/${A}`, admin, {
      name: hostile,
      playbook: b64(playbook("    - ansible.builtin.ping:\n")),
      hosts: [{ id: "web1" }],
    });
    expect(job.status, job.text).toBe(200);

    const p = await newPage();
    await p.goto(`${stack.url}/ui/`);
    await p.waitForSelector("#username");
    await p.type("#username", ADMIN.username);
    await p.type("#password", ADMIN.password);
    await p.keyboard.press("Enter");
    await p.waitForSelector("[data-testid=role]");
    expect(await text(p, "[data-testid=role]")).toBe("admin");
    await p.click('nav[aria-label=Main] a[href="#/audit"]');
    await p.waitForSelector("table[aria-label='Audit log'] tbody tr");
    const rows = () =>
      p.$$eval("table[aria-label='Audit log'] tbody tr", (trs) => trs.map((tr) => ({ action: tr.getAttribute("data-action"), text: tr.textContent ?? "" })));
    const all = await rows();
    // Newest first: this admin's login, then the job the API just created, then what the user did in the browser.
    expect(all[0]!.action).toBe("login.succeeded");
    expect(all[0]!.text).toContain(sa.json.id);
    expect(all[0]!.text).toContain("service account");
    expect(all[1]!.action).toBe("job.created");
    expect(all[1]!.text).toContain(hostile); // as text
    const actions = all.map((r) => r.action);
    for (const a of [
      "serviceAccount.created",
      "job.created",
      "job.replaced",
      "job.deleted",
      "execution.started",
      "execution.stopped",
      "login.failed",
      "login.succeeded",
    ]) {
      expect(actions, a).toContain(a);
    }
    // The user's job, created in the browser by the service account that signed in there.
    const userSa = (await stack.call("GET", `/serviceAccounts/${A}/${USER.alias}`, admin)).json.id as string;
    expect(all.find((r) => r.action === "job.created" && r.text.includes(userSa))).toBeTruthy();
    expect(await p.evaluate(() => (window as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await p.$("table[aria-label='Audit log'] img, table[aria-label='Audit log'] script")).toBeNull();
    await shot(p, "audit");

    // Only the jobs.
    await p.select("#audit-type", "job");
    await p.waitForFunction(() =>
      [...document.querySelectorAll("table[aria-label='Audit log'] tbody tr")].every((tr) => tr.getAttribute("data-action")?.startsWith("job.")),
    );
    const jobsOnly = await rows();
    expect(jobsOnly.length).toBeGreaterThanOrEqual(4);
    expect(jobsOnly.length).toBeLessThan(all.length);
    await p.close();
  }, 60_000);

  it("drops the token on a 401 and asks to sign in again", async () => {
    await page.evaluate(() => {
      const s = JSON.parse(sessionStorage.getItem("runner.session")!);
      sessionStorage.setItem("runner.session", JSON.stringify({ ...s, token: s.token.slice(0, -4) + "AAAA" }));
    });
    await page.goto(`${stack.url}/ui/#/jobs`);
    await page.reload();
    await page.waitForSelector("#username");
    expect(await text(page, ".notice")).toMatch(/401/);
    expect(await page.evaluate(() => sessionStorage.getItem("runner.session"))).toBeNull();
  }, 30_000);

  it("a viewer (signed in with a pasted token) sees no Start, Edit, Delete, Stop or New job", async () => {
    const viewer = await newPage();
    await viewer.goto(`${stack.url}/ui/`);
    await viewer.click("#tab-token");
    await fill(viewer, "#token", await stack.token([A], "viewer"));
    await clickText(viewer, "button", "Use this token");
    await viewer.waitForSelector("[data-testid=role]");
    expect(await text(viewer, "[data-testid=role]")).toBe("viewer");
    await viewer.waitForSelector("table[aria-label=Jobs]");
    expect(await viewer.$('a[href="#/jobs/new"]')).toBeNull();
    await viewer.goto(`${stack.url}/ui/#/jobs/${encodeURIComponent(jobId)}`);
    await viewer.waitForSelector("[data-testid=job-description]");
    expect(await viewer.$("[data-testid=start]")).toBeNull();
    const buttons = await viewer.$$eval("main button, main a.button", (els) => els.map((e) => e.textContent?.trim()));
    for (const b of ["Start", "Edit", "Delete"]) expect(buttons).not.toContain(b);
    await viewer.waitForSelector("table[aria-label=Executions] a");
    await viewer.click("table[aria-label=Executions] a");
    await viewer.waitForSelector("[data-testid=execution-status]");
    expect(await viewer.$("[data-testid=stop]")).toBeNull();
    await shot(viewer, "viewer-job");
    await viewer.close();
  }, 60_000);

  it("is readable at 375 px: nothing wider than the screen", async () => {
    const phone = await newPage(375, 812);
    await phone.goto(`${stack.url}/ui/`);
    await phone.waitForSelector("#username");
    await shot(phone, "signin-375");
    await phone.type("#username", USER.username);
    await phone.type("#password", USER.password);
    await phone.keyboard.press("Enter");
    await phone.waitForSelector("table[aria-label=Jobs]");
    for (const route of ["#/jobs", `#/jobs/${encodeURIComponent(jobId)}`, "#/agents", "#/inventory", "#/jobs/new"]) {
      await phone.goto(`${stack.url}/ui/${route}`);
      await phone.waitForSelector("main h1");
      await sleep(300);
      const width = await phone.evaluate(() => document.documentElement.scrollWidth);
      const wide = await phone.evaluate(() =>
        [...document.querySelectorAll("body *")]
          .filter((el) => el.getBoundingClientRect().right > 376 && !el.parentElement?.closest(".table-wrap, .log"))
          .slice(0, 5)
          .map((el) => `${el.tagName.toLowerCase()}.${el.className}`),
      );
      expect(width, `${route}: ${wide.join(" ")}`).toBeLessThanOrEqual(375);
    }
    await phone.goto(`${stack.url}/ui/#/jobs/${encodeURIComponent(jobId)}`);
    await phone.waitForSelector("table[aria-label=Executions] a");
    await phone.click("table[aria-label=Executions] a");
    await phone.waitForSelector("[data-testid=host-table]");
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await shot(phone, "execution-375");
    await phone.close();
  }, 60_000);

  it("/docs renders the API reference with every host but 127.0.0.1 unreachable", async () => {
    const docs = await newPage();
    const blocked: string[] = [];
    await docs.setRequestInterception(true);
    docs.on("request", (req) => {
      const host = new URL(req.url()).hostname;
      if (host === "127.0.0.1" || req.url().startsWith("data:")) void req.continue();
      else {
        blocked.push(req.url());
        void req.abort("internetdisconnected");
      }
    });
    await docs.goto(`${stack.url}/docs`, { waitUntil: "networkidle0" });
    await docs.waitForFunction(() => (document.querySelector(".swagger-ui .info .title")?.textContent ?? "").includes("Runner API"), { timeout: 30_000 });
    await docs.waitForFunction(() => document.querySelectorAll(".swagger-ui .opblock").length > 25);
    expect(await text(docs, ".swagger-ui")).toContain("/jobs/{alias}/{jobId}/start");
    expect(blocked).toEqual([]);
    await shot(docs, "docs");
    await docs.close();
  }, 60_000);

  it("renders a log's ANSI colours as classed spans of text, escapes cut between chunks included, never as HTML", async () => {
    // The dashboard's own ANSI code (ui/src/ansi.ts), bundled for a blank page.
    const { build } = await import("esbuild");
    const out = await build({
      entryPoints: [join(import.meta.dirname, "..", "..", "ui", "src", "ansi.ts")],
      bundle: true,
      write: false,
      format: "iife",
      globalName: "Ansi",
    });
    const p = await newPage();
    await p.goto("about:blank");
    await p.addScriptTag({ content: out.outputFiles[0]!.text });
    const result = await p.evaluate(() => {
      const pre = document.createElement("pre");
      document.body.appendChild(pre);
      const a = new (window as any).Ansi.AnsiAppender(pre);
      for (const chunk of ["ok: \x1b[0;32mgreen", " still\x1b[", "0m plain \x1b[1;31mbold red <script>window.__x=1</script>\x1b[0m", "\x1b[K end"])
        a.append(chunk);
      return {
        text: pre.textContent,
        spans: [...pre.querySelectorAll("span")].map((s) => [s.className, s.textContent]),
        scripts: pre.querySelectorAll("script").length,
        x: (window as any).__x,
      };
    });
    expect(result.text).toBe("ok: green still plain bold red <script>window.__x=1</script> end");
    expect(result.spans).toEqual([
      ["a-f32", "green"],
      ["a-f32", " still"],
      ["a-f31 a-bold", "bold red <script>window.__x=1</script>"],
    ]);
    expect(result.scripts).toBe(0);
    expect(result.x).toBeUndefined();
    await p.close();
  });

  it("logged no console error and no Content-Security-Policy violation", () => {
    expect(consoleErrors).toEqual([]);
  });
});
