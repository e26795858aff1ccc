/**
 * Where a webhook may be sent: checked where a job is saved and again before each send (a job saved
 * under older rules, or ALLOW_LOOPBACK_HTTP turned off since, must not reach an internal address).
 *
 * The WHATWG URL parser already turns every IPv4 spelling into dotted decimal (`127.1`,
 * `0x7f000001`, `017700000001` all become `127.0.0.1`) and IPv6 into its compressed form
 * (`[::ffff:127.0.0.1]` becomes `[::ffff:7f00:1]`), so the checks below read `hostname` as parsed
 * and never the text as typed. A name that resolves to an internal address cannot be seen from here
 * (Workers have no resolver); Cloudflare's own egress does not reach private networks.
 */

/** Names that are internal by definition (RFC 6761, 6762, and `.internal` reserved for private use). */
const INTERNAL_SUFFIXES = ["localhost", "local", "internal"];

/** IPv4 blocks that are not the public internet: [first octets as a number, prefix length]. */
const BLOCKED_V4: [string, number][] = [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local (cloud metadata at 169.254.169.254)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 3], // multicast, reserved, broadcast
];

function v4Number(host: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

function inBlock(n: number, base: string, bits: number): boolean {
  const b = v4Number(base)!;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (n & mask) >>> 0 === (b & mask) >>> 0;
}

const blockedV4 = (n: number) => BLOCKED_V4.some(([base, bits]) => inBlock(n, base, bits));
const loopbackV4 = (n: number) => inBlock(n, "127.0.0.0", 8);

/** The eight 16-bit groups of a bracketed IPv6 hostname as the URL parser writes it; null if it is not one. */
function v6Groups(host: string): number[] | null {
  if (!host.startsWith("[") || !host.endsWith("]")) return null;
  const text = host.slice(1, -1);
  const [head, tail] = text.includes("::") ? text.split("::") : [text, null];
  const parse = (s: string | undefined) => (s ? s.split(":").map((g) => Number.parseInt(g, 16)) : []);
  const h = parse(head);
  const t = tail === null ? [] : parse(tail);
  if (tail === null && h.length !== 8) return null;
  const groups = [...h, ...Array(8 - h.length - t.length).fill(0), ...t];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}

type AddressKind = "public" | "loopback" | "internal";

/** What a parsed hostname is: a public address or name, loopback, or otherwise internal. */
function classify(hostname: string): AddressKind {
  const host = hostname.toLowerCase().replace(/\.+$/, ""); // `localhost.` is localhost
  const v4 = v4Number(host);
  if (v4 !== null) return loopbackV4(v4) ? "loopback" : blockedV4(v4) ? "internal" : "public";
  const g = v6Groups(host);
  if (g) {
    const zeroHead = (n: number) => g.slice(0, n).every((x) => x === 0);
    if (zeroHead(7) && g[7] === 1) return "loopback"; // ::1
    if (zeroHead(8)) return "internal"; // ::
    // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d): never needed, often a disguise.
    if (zeroHead(5) && (g[5] === 0xffff || g[5] === 0)) return "internal";
    const embedded = (hi: number, lo: number) => ((hi << 16) >>> 0) + lo;
    if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return blockedV4(embedded(g[6]!, g[7]!)) ? "internal" : "public"; // NAT64
    if (g[0] === 0x2002) return blockedV4(embedded(g[1]!, g[2]!)) ? "internal" : "public"; // 6to4
    if ((g[0]! & 0xfe00) === 0xfc00) return "internal"; // unique local fc00::/7
    if ((g[0]! & 0xffc0) === 0xfe80 || (g[0]! & 0xffc0) === 0xfec0) return "internal"; // link-local, site-local
    if ((g[0]! & 0xff00) === 0xff00) return "internal"; // multicast
    if (g[0] === 0x2001 && g[1] === 0xdb8) return "internal"; // documentation
    return "public";
  }
  if (host === "localhost" || host.endsWith(".localhost")) return "loopback";
  if (INTERNAL_SUFFIXES.some((s) => host === s || host.endsWith(`.${s}`))) return "internal";
  return "public";
}

/**
 * Why `url` may not receive webhooks, or null. https to a public host; no credentials; loopback
 * (http or https) only when `allowLoopback` (ALLOW_LOOPBACK_HTTP=true: local development and tests).
 */
export function callbackUrlProblem(url: string, allowLoopback: boolean): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "must be an absolute https URL";
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") return "must be an absolute https URL";
  if (u.username || u.password) return "must not carry credentials (user:password@)";
  const kind = classify(u.hostname);
  if (kind === "internal") return "must not name a private, link-local, unique-local or otherwise internal address or name";
  if (kind === "loopback") {
    return allowLoopback ? null : "must not name a loopback address or localhost (allowed only when ALLOW_LOOPBACK_HTTP is on, for local development)";
  }
  return u.protocol === "https:" ? null : "must be https (http only for loopback hosts in local development)";
}

/** Whether `url` is refused only because it is loopback (what ALLOW_LOOPBACK_HTTP decides). */
export function isLoopbackOnlyProblem(url: string): boolean {
  return callbackUrlProblem(url, true) === null && callbackUrlProblem(url, false) !== null;
}
