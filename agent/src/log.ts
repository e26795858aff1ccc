// One line per event: `time LEVEL message key=value …` as text, or one JSON object per line.

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";
export type LogFields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  format?: LogFormat;
  level?: LogLevel;
  /** Where lines go; stderr by default so that stdout stays free for command output. */
  write?: (line: string) => void;
  now?: () => Date;
}

function textValue(v: unknown): string {
  if (v instanceof Error) v = v.message;
  const s = typeof v === "string" ? v : (JSON.stringify(v) ?? String(v));
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

function plain(v: unknown): unknown {
  return v instanceof Error ? v.message : v;
}

export function createLogger(opts: LoggerOptions = {}, base: LogFields = {}): Logger {
  const format = opts.format ?? "text";
  const min = RANK[opts.level ?? "info"];
  const write = opts.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const now = opts.now ?? (() => new Date());

  function emit(level: LogLevel, msg: string, fields?: LogFields): void {
    if (RANK[level] < min) return;
    const all: LogFields = { ...base, ...fields };
    const time = now().toISOString();
    if (format === "json") {
      const rec: LogFields = { time, level, msg };
      for (const [k, v] of Object.entries(all)) if (v !== undefined) rec[k] = plain(v);
      write(JSON.stringify(rec));
      return;
    }
    // Text: a message with newlines would break "one line per event"; escape them.
    let line = `${time} ${level.toUpperCase().padEnd(5)} ${msg.replace(/\r?\n/g, "\\n")}`;
    for (const [k, v] of Object.entries(all)) if (v !== undefined) line += ` ${k}=${textValue(v)}`;
    write(line);
  }

  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger(opts, { ...base, ...fields }),
  };
}

/** A logger that drops everything (library use, tests that do not look at logs). */
export const silentLogger: Logger = createLogger({ write: () => {} });
