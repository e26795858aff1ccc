// Tables for people, JSON for scripts; colours only on a terminal (and never with NO_COLOR).

export interface Out {
  write(text: string): void;
  isTTY: boolean;
}

export function colours(enabled: boolean) {
  const wrap = (code: number) => (s: string) => (enabled ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { red: wrap(31), green: wrap(32), yellow: wrap(33), blue: wrap(34), dim: wrap(2), bold: wrap(1) };
}
export type Colours = ReturnType<typeof colours>;

export function statusColour(c: Colours, status: string): string {
  if (status === "SUCCESS" || status === "online") return c.green(status);
  if (["FAILURE", "INIT_FAILURE", "KILLED", "offline"].includes(status)) return c.red(status);
  if (["STOPPED", "STOPPING", "KILLING"].includes(status)) return c.yellow(status);
  if (["RUNNING", "INITIALIZING", "PENDING"].includes(status)) return c.blue(status);
  return status;
}

// eslint-disable-next-line no-control-regex
const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length;

/** A plain text table: a header row, then one row per item, columns padded to fit. */
export function table(headers: string[], rows: string[][], c: Colours): string {
  if (!rows.length) return "";
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ""))));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + " ".repeat(widths[i]! - visible(cell))))
      .join("  ")
      .trimEnd();
  return [c.bold(line(headers)), ...rows.map(line)].join("\n") + "\n";
}

export function when(ms: number | null | undefined): string {
  if (!ms) return "-";
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
