/**
 * The Worker's structured logger: one JSON object per line, `{time, level, msg, ...fields}`, the
 * shape the agent's `--log-format json` writes (agent/src/log.ts), so one query reads both.
 * An Error field is logged as its message; pass `stack` yourself where an operator needs it.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

const plain = (v: unknown): unknown => (v instanceof Error ? v.message : v);

// console is looked up at each call (tests replace console.error to catch what is logged).
function write(level: LogLevel, line: string): void {
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

export function createLogger(base: LogFields = {}): Logger {
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    const rec: LogFields = { time: new Date().toISOString(), level, msg };
    for (const [k, v] of Object.entries({ ...base, ...fields })) if (v !== undefined) rec[k] = plain(v);
    write(level, JSON.stringify(rec));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ ...base, ...fields }),
  };
}

export const log: Logger = createLogger();
