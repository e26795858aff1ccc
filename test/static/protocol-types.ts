/**
 * TypeScript types from the JSON Schemas of /openapi.json: the agent's view of the protocol
 * (agent/src/protocol.ts) is generated from the worker's zod schemas this way, so that the lease,
 * event and status-report shapes are written once; so are the public API's answers that the
 * dashboard and the CLI read (ui/src/api-types.ts, cli/src/api-types.ts). Covers what those
 * schemas use: objects, arrays, records, enums, nullable types, $ref and allOf (an extension).
 */

export interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  description?: string;
}

const refName = (ref: string) => ref.replace("#/components/schemas/", "");
const key = (k: string) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k));

function union(parts: string[]): string {
  return [...new Set(parts)].join(" | ");
}

export function tsType(s: JsonSchema, indent = ""): string {
  if (s.$ref) return refName(s.$ref);
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return union(alts.map((a) => tsType(a, indent)));
  if (s.allOf)
    return s.allOf
      .map((a) => tsType(a, indent))
      .map((t) => (topLevelUnion(t) ? `(${t})` : t))
      .join(" & ");
  if (s.enum) return union(s.enum.map((v) => JSON.stringify(v)));
  const types = s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
  if (types.length === 0) return "unknown";
  return union(types.map((t) => single(t, s, indent)));
}

function single(type: string, s: JsonSchema, indent: string): string {
  switch (type) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array": {
      const item = s.items ? tsType(s.items, indent) : "unknown";
      return topLevelUnion(item) ? `(${item})[]` : `${item}[]`;
    }
    case "object":
      return objectType(s, indent);
    default:
      throw new Error(`protocol types: no TypeScript for JSON Schema type ${type}`);
  }
}

/** Whether `t` is a union or an intersection at its top level (outside any braces): it needs parentheses before `[]` or `&`. */
function topLevelUnion(t: string): boolean {
  let depth = 0;
  for (const c of t) {
    if (c === "{" || c === "(" || c === "<") depth++;
    else if (c === "}" || c === ")" || c === ">") depth--;
    else if ((c === "|" || c === "&") && depth === 0) return true;
  }
  return false;
}

function objectType(s: JsonSchema, indent: string): string {
  const props = Object.entries(s.properties ?? {});
  const extra = s.additionalProperties;
  if (props.length === 0) {
    if (extra && typeof extra === "object") return `Record<string, ${tsType(extra, indent)}>`;
    return "Record<string, unknown>";
  }
  const required = new Set(s.required ?? []);
  const inner = `${indent}  `;
  const lines = props.map(([k, v]) => `${inner}${key(k)}${required.has(k) ? "" : "?"}: ${tsType(v, inner)};`);
  return `{\n${lines.join("\n")}\n${indent}}`;
}

/** The components `names` and every component they refer to, as exported TypeScript types. */
export function protocolModule(schemas: Record<string, JsonSchema>, names: string[], header: string): string {
  const wanted: string[] = [];
  const visit = (name: string) => {
    if (wanted.includes(name)) return;
    const s = schemas[name];
    if (!s) throw new Error(`protocol types: /openapi.json has no component ${name}`);
    wanted.push(name);
    for (const ref of JSON.stringify(s).matchAll(/"#\/components\/schemas\/([^"]+)"/g)) visit(ref[1]!);
  };
  for (const n of names) visit(n);
  const body = wanted.map((n) => `export type ${n} = ${tsType(schemas[n]!)};\n`).join("\n");
  return `${header}\n${body}`;
}
