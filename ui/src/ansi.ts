// ANSI colours (SGR) in a live log, rendered as DOM text nodes inside classed spans: the log is
// never parsed as HTML, and no inline style is needed (the CSP allows none). Ansible prints the 8
// basic and 8 bright colours, bold and reset; other escape sequences are dropped.

interface Style {
  fg: number | null;
  bg: number | null;
  bold: boolean;
  dim: boolean;
  underline: boolean;
}
const plain = (): Style => ({ fg: null, bg: null, bold: false, dim: false, underline: false });

function apply(style: Style, params: number[]) {
  if (params.length === 0) params = [0];
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (p === 0) Object.assign(style, plain());
    else if (p === 1) style.bold = true;
    else if (p === 2) style.dim = true;
    else if (p === 4) style.underline = true;
    else if (p === 22) style.bold = style.dim = false;
    else if (p === 24) style.underline = false;
    else if ((p >= 30 && p <= 37) || (p >= 90 && p <= 97)) style.fg = p;
    else if (p === 39) style.fg = null;
    else if ((p >= 40 && p <= 47) || (p >= 100 && p <= 107)) style.bg = p;
    else if (p === 49) style.bg = null;
    else if (p === 38 || p === 48) i += params[i + 1] === 5 ? 2 : params[i + 1] === 2 ? 4 : 1; // 256/true colour: skipped
  }
}

function classes(s: Style): string {
  const c: string[] = [];
  if (s.fg !== null) c.push(`a-f${s.fg}`);
  if (s.bg !== null) c.push(`a-b${s.bg}`);
  if (s.bold) c.push("a-bold");
  if (s.dim) c.push("a-dim");
  if (s.underline) c.push("a-u");
  return c.join(" ");
}

// CSI sequences (ESC [ params final), OSC (ESC ] … BEL/ST) and lone two-character escapes.
const ESCAPE = /\x1b(?:\[([0-9;?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;

/** Appends text with ANSI escapes to an element; keeps the colour state and any cut-off escape between calls. */
export class AnsiAppender {
  private style = plain();
  private carry = "";
  constructor(private readonly el: HTMLElement) {}

  append(chunk: string) {
    let text = this.carry + chunk;
    this.carry = "";
    // An escape cut off at the end of this chunk waits for the next one.
    const cut = text.lastIndexOf("\x1b");
    if (cut >= 0 && !/^\x1b(?:\[[0-9;?]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/.test(text.slice(cut)) && text.length - cut < 64) {
      this.carry = text.slice(cut);
      text = text.slice(0, cut);
    }
    const frag = document.createDocumentFragment();
    let last = 0;
    const emit = (s: string) => {
      if (!s) return;
      const cls = classes(this.style);
      if (!cls) frag.appendChild(document.createTextNode(s));
      else {
        const span = document.createElement("span");
        span.className = cls;
        span.textContent = s;
        frag.appendChild(span);
      }
    };
    ESCAPE.lastIndex = 0;
    for (let m: RegExpExecArray | null; (m = ESCAPE.exec(text)); ) {
      emit(text.slice(last, m.index));
      last = m.index + m[0].length;
      if (m[2] === "m")
        apply(
          this.style,
          (m[1] ?? "")
            .split(";")
            .filter((x) => x !== "" && x !== "?")
            .map(Number),
        );
    }
    emit(text.slice(last).replace(/\x1b/g, ""));
    this.el.appendChild(frag);
  }

  clear() {
    this.el.textContent = "";
    this.style = plain();
    this.carry = "";
  }
}
