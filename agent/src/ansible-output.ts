// What ansible-playbook says while it runs: the callback plugin's events on fd 3 and its own
// stdout/stderr, turned into events for the sink (redacted), and what the outcome needs of them:
// whether the playbook started, the recap's counters, the hosts seen failing, the end of stderr.
import { limitEvent, parsePluginLine, verboseEvent } from "./events.ts";
import { LineSplitter } from "./lines.ts";
import { StreamRedactor, type Redactor } from "./redact.ts";
import type { EventInput, HostStats } from "./types.ts";

/** Ansible's stderr kept for the error message of a run that fails before its playbook starts. */
const STDERR_TAIL = 8 * 1024;

export class AnsibleOutput {
  /** The playbook_on_start event came. */
  started = false;
  /** The playbook_on_stats counters, once they came. */
  stats: Record<string, HostStats> | null = null;
  /** Hosts seen failing or unreachable (when no recap comes). */
  readonly failedSeen = new Set<string>();
  stderrTail = "";
  private readonly redactor: Redactor;
  private readonly emit: (e: EventInput) => void;
  private readonly onStart: () => void;

  /**
   * `emit` gets every event already redacted and cut to size; `onStart` is called once, when
   * the playbook starts.
   */
  constructor(redactor: Redactor, emit: (e: EventInput) => void, onStart: () => void) {
    this.redactor = redactor;
    this.emit = emit;
    this.onStart = onStart;
  }

  /** Reads the callback plugin's stream (one JSON event per line) until it closes. */
  readEvents(stream: NodeJS.ReadableStream): Promise<void> {
    const splitter = new LineSplitter((lines) => {
      for (const line of lines) {
        if (!line) continue;
        const e = parsePluginLine(line);
        if (!e) {
          this.send(verboseEvent([line], "events"));
          continue;
        }
        this.observe(e);
        this.send(e);
      }
    });
    return new Promise((res) => {
      stream.setEncoding("utf8");
      stream.on("data", (d: string) => splitter.push(d));
      stream.on("error", () => res());
      stream.on("close", () => {
        splitter.end();
        res();
      });
    });
  }

  /** Reads stdout or stderr as `verbose` events (redacted across chunk boundaries) until it closes. */
  readOutput(stream: NodeJS.ReadableStream, name: "stdout" | "stderr"): Promise<void> {
    const redact = new StreamRedactor(this.redactor);
    const splitter = new LineSplitter((lines) => {
      const text = `${lines.join("\n")}\n`;
      if (name === "stderr") this.stderrTail = (this.stderrTail + text).slice(-STDERR_TAIL);
      this.send(verboseEvent(lines, name));
    });
    return new Promise((res) => {
      stream.setEncoding("utf8");
      stream.on("data", (d: string) => splitter.push(redact.push(d)));
      stream.on("error", () => res());
      stream.on("close", () => {
        splitter.push(redact.end());
        splitter.end();
        res();
      });
    });
  }

  private send(e: EventInput): void {
    this.emit(limitEvent(this.redactor.event(e)));
  }

  private observe(e: EventInput): void {
    switch (e.event_type) {
      case "playbook_on_start":
        if (!this.started) {
          this.started = true;
          this.onStart();
        }
        break;
      case "playbook_on_stats": {
        const hosts = (e.data as { hosts?: Record<string, HostStats> }).hosts;
        // Host names and counts: protocol fields, never redacted (a short secret must not rename a host).
        if (hosts && typeof hosts === "object") this.stats = hosts;
        break;
      }
      case "runner_on_failed":
        if (e.host && !(e.data as { ignore_errors?: boolean }).ignore_errors) this.failedSeen.add(e.host);
        break;
      case "runner_on_unreachable":
        if (e.host) this.failedSeen.add(e.host);
        break;
    }
  }
}
