// Splits a text stream into lines; a line longer than `maxLine` is passed on cut, the rest of it dropped.

export class LineSplitter {
  private partial = "";
  private dropping = false;
  private readonly onLines: (lines: string[], cut: boolean) => void;
  private readonly maxLine: number;

  constructor(onLines: (lines: string[], cut: boolean) => void, maxLine = 16 * 1024 * 1024) {
    this.onLines = onLines;
    this.maxLine = maxLine;
  }

  push(chunk: string): void {
    if (!chunk) return;
    const parts = chunk.split("\n");
    const last = parts.pop()!;
    const lines: string[] = [];
    for (const p of parts) {
      if (this.dropping) {
        this.dropping = false;
        this.partial = "";
        continue;
      }
      lines.push(this.partial + p);
      this.partial = "";
    }
    if (lines.length) this.onLines(lines.map(stripCr), false);
    if (this.dropping) return;
    this.partial += last;
    if (this.partial.length > this.maxLine) {
      this.onLines([this.partial.slice(0, this.maxLine)], true);
      this.partial = "";
      this.dropping = true;
    }
  }

  /** Passes on a last line that had no newline. */
  end(): void {
    if (this.partial && !this.dropping) this.onLines([stripCr(this.partial)], false);
    this.partial = "";
    this.dropping = false;
  }
}

function stripCr(s: string): string {
  return s.endsWith("\r") ? s.slice(0, -1) : s;
}
