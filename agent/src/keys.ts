// SSH private keys arrive as base64 of the PEM text (or as the PEM itself).

export class KeyError extends Error {}

/** The PEM text of a key given as base64 or raw PEM, with Unix newlines and a final newline (ssh needs it). */
export function decodePrivateKey(value: string, what: string): string {
  let text = value.trim();
  if (!text.includes("-----BEGIN")) {
    const compact = text.replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) throw new KeyError(`${what} is neither a PEM key nor base64 of one`);
    text = Buffer.from(compact, "base64").toString("utf8").trim();
    if (!text.includes("-----BEGIN")) throw new KeyError(`${what} decodes from base64 but is not a PEM private key`);
  }
  return text.replace(/\r\n/g, "\n") + "\n";
}
