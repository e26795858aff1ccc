// What test/e2e/ui.test.ts drives the dashboard with: the stack and one headless chromium
// (Debian's, through puppeteer-core), pages that collect console errors, and the few gestures the
// tests repeat. Screenshots go to test/artifacts/ui/ (gitignored).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { Stack } from "./stack";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const ARTIFACTS = join(import.meta.dirname, "..", "artifacts", "ui");

export class Dashboard {
  readonly stack = new Stack();
  /** Console errors and CSP violations seen in any page: there must be none. */
  readonly consoleErrors: string[] = [];
  private browser?: Browser;
  private userDataDir?: string;

  /** The stack (wrangler dev and an agent), then the browser. */
  async start(): Promise<void> {
    if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM} (apt-get install chromium)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    await this.stack.start();
    this.userDataDir = mkdtempSync(join(tmpdir(), "rnr-chromium-"));
    this.browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: this.userDataDir,
      args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
    });
  }

  async stop(): Promise<void> {
    await this.browser?.close();
    if (this.userDataDir) rmSync(this.userDataDir, { recursive: true, force: true });
    await this.stack.stop();
  }

  newPage = async (width = 1440, height = 900): Promise<Page> => {
    const p = await this.browser!.newPage();
    await p.setViewport({ width, height });
    p.on("console", (m) => {
      // API answers of 4xx are part of the tests (and shown by the app); anything else is not expected.
      if (m.type() === "error" && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) this.consoleErrors.push(m.text());
    });
    p.on("pageerror", (e) => this.consoleErrors.push(String(e)));
    p.on("dialog", (d) => void d.accept());
    return p;
  };

  /** Goes to a dashboard route and waits until its page is drawn. */
  go = async (p: Page, route: string, ready = "main h1") => {
    await p.goto(`${this.stack.url}/ui/${route}`);
    await p.waitForSelector(ready);
  };
}

export async function shot(p: Page, name: string) {
  await p.screenshot({ path: join(ARTIFACTS, `${name}.png`) as `${string}.png`, fullPage: true });
}

/** Sets an input's value the way typing would (Preact listens to input events). */
export async function fill(p: Page, selector: string, value: string) {
  await p.waitForSelector(selector);
  await p.$eval(
    selector,
    (el, v) => {
      const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
      Object.getOwnPropertyDescriptor(proto, "value")!.set!.call(el, v);
      el.dispatchEvent(new Event("input", { bubbles: true }));
    },
    value,
  );
}

export const text = (p: Page, selector: string) => p.$eval(selector, (el) => el.textContent ?? "").catch(() => "");
export const statusOf = (p: Page) => p.$eval("[data-testid=execution-status] [data-status]", (el) => el.getAttribute("data-status")).catch(() => null);

export async function clickText(p: Page, tag: string, label: string) {
  const handle = await p.waitForFunction(
    (t, l) => [...document.querySelectorAll(t)].find((el) => el.textContent?.trim() === l && !(el as HTMLButtonElement).disabled) ?? null,
    { timeout: 15_000 },
    tag,
    label,
  );
  await (handle as any).click();
}

export function playbook(tasks: string) {
  return `- hosts: all\n  gather_facts: false\n  tasks:\n${tasks}`;
}
