/**
 * A recorder around the bindings, for the load model (docs/SCALING.md) and the simulator: counts
 * every D1 statement (read or write, by statement), every request to a Durable Object (by class,
 * method and object), every Queue message and every outbound fetch.
 *
 * It patches the bindings' prototypes (and the global `fetch`), which every Worker invocation and
 * every Durable Object of the isolate share, so one install counts the whole Worker: the routes,
 * the objects, the cron and the queue consumer. It is never installed in production: a worker test
 * installs it (test/worker/load-model.test.ts), and `wrangler dev` only with `RUNNER_METER=true`
 * (worker/index.ts), which also serves the counts at `GET /__meter` for scripts/simulate.mjs.
 */

export interface MeterCounts {
  /**
   * D1 statements: reads (SELECT), writes (anything else), and per statement fingerprint; `inBatches`
   * counts those of them sent in a batch (one round trip for the batch), per fingerprint too.
   */
  d1: { reads: number; writes: number; batches: number; byStatement: Record<string, number>; inBatches: Record<string, number> };
  /** Durable Object requests by class (binding name), by `Class.method`, and by object. */
  objects: { byClass: Record<string, number>; byMethod: Record<string, number>; byObject: Record<string, number> };
  /** Alarms run, by class. */
  alarms: Record<string, number>;
  queue: { sends: number; messages: number };
  /** Outbound `fetch` calls (subrequests to the internet). */
  fetches: number;
}

export interface Meter {
  readonly counts: MeterCounts;
  /** Counts since the last `reset` (or install). */
  reset(): void;
  /** A copy of the counts, safe to keep while counting goes on. */
  snapshot(): MeterCounts;
  /** Runs `fn` without counting (a test's own setup statements); whatever else runs meanwhile is not counted either. */
  uncounted<T>(fn: () => Promise<T>): Promise<T>;
}

const empty = (): MeterCounts => ({
  d1: { reads: 0, writes: 0, batches: 0, byStatement: {}, inBatches: {} },
  objects: { byClass: {}, byMethod: {}, byObject: {} },
  alarms: {},
  queue: { sends: 0, messages: 0 },
  fetches: 0,
});

const bump = (m: Record<string, number>, k: string, n = 1) => {
  m[k] = (m[k] ?? 0) + n;
};

/** "SELECT … FROM executions" → "read executions"; "INSERT INTO agents" → "write agents". */
export function fingerprint(sql: string): { kind: "read" | "write"; key: string } {
  const s = sql.replace(/\s+/g, " ").trim();
  const verb = (/^(\w+)/.exec(s)?.[1] ?? "?").toUpperCase();
  const read = verb === "SELECT" || (verb === "WITH" && !/\b(INSERT|UPDATE|DELETE)\b/i.test(s));
  const table = /^(?:INSERT(?: OR \w+)? INTO|REPLACE INTO|UPDATE|DELETE FROM)\s+([\w"]+)/i.exec(s)?.[1] ?? /\bFROM\s+([\w"]+)/i.exec(s)?.[1] ?? "?";
  return { kind: read ? "read" : "write", key: `${verb} ${table.replace(/"/g, "")}` };
}

/** The bindings counted (wrangler.toml); anything else in env (service bindings, vars) is left alone. */
const BINDINGS = { d1: "DB", objects: ["EXECUTION", "DISPATCHER", "LOGIN_THROTTLE", "AGENT"], queue: "CALLBACKS" } as const;

let installed: { meter: Meter; counts: MeterCounts } | null = null;

/** Counting stub → the stub it wraps (what `runInDurableObject` needs: a real stub). */
const uncountedStubs = new WeakMap<object, object>();
/** The stub a counting one wraps; any other stub as it is. */
export const rawStub = <T extends object>(stub: T): T => (uncountedStubs.get(stub) as T | undefined) ?? stub;

type AnyFn = (...a: unknown[]) => unknown;

/**
 * Installs the recorder (once per isolate; a second call answers the same meter). `env` supplies
 * the bindings whose prototypes are patched; `classes` (optional) the Durable Object classes whose
 * alarms are counted.
 */
export function installMeter(env: Record<string, unknown>, classes: Record<string, { prototype: object }> = {}): Meter {
  if (installed) return installed.meter;
  const state = { counts: empty() };
  // While paused, counts go to a scratch copy that is thrown away.
  let paused = 0;
  let scratch = empty();
  const meter: Meter = {
    get counts() {
      return state.counts;
    },
    reset() {
      state.counts = empty();
    },
    snapshot() {
      return structuredClone(state.counts);
    },
    async uncounted(fn) {
      paused++;
      try {
        return await fn();
      } finally {
        paused--;
        scratch = empty();
      }
    },
  };
  installed = { meter, counts: state.counts };
  const c = () => (paused > 0 ? scratch : state.counts);

  const countSql = (sql: string, batched = false) => {
    const f = fingerprint(sql);
    if (f.kind === "read") c().d1.reads++;
    else c().d1.writes++;
    bump(c().d1.byStatement, f.key);
    if (batched) bump(c().d1.inBatches, f.key);
  };

  // ---- D1 -------------------------------------------------------------------------------------
  const d1 = env[BINDINGS.d1] as { prepare(sql: string): object } | undefined;
  if (d1) {
    const dbProto = Object.getPrototypeOf(d1) as Record<string, AnyFn>;
    const stmtProto = Object.getPrototypeOf(d1.prepare("SELECT 1")) as Record<string, AnyFn>;
    const sqlOf = new WeakMap<object, string>();
    const prepare = dbProto.prepare!;
    dbProto.prepare = function (this: unknown, sql: unknown) {
      const stmt = prepare.call(this, sql) as object;
      sqlOf.set(stmt, String(sql));
      return stmt;
    };
    const bind = stmtProto.bind!;
    stmtProto.bind = function (this: object, ...a: unknown[]) {
      const out = bind.apply(this, a) as object;
      sqlOf.set(out, sqlOf.get(this) ?? (this as { statement?: string }).statement ?? "?");
      return out;
    };
    const textOf = (stmt: object) => sqlOf.get(stmt) ?? (stmt as { statement?: string }).statement ?? "?";
    for (const m of ["run", "all", "first", "raw"]) {
      const orig = stmtProto[m];
      if (typeof orig !== "function") continue;
      stmtProto[m] = function (this: object, ...a: unknown[]) {
        countSql(textOf(this));
        return orig.apply(this, a);
      };
    }
    const batch = dbProto.batch!;
    dbProto.batch = function (this: unknown, stmts: unknown) {
      c().d1.batches++;
      for (const s of stmts as object[]) countSql(textOf(s), true);
      return batch.call(this, stmts);
    };
    const exec = dbProto.exec;
    if (exec) {
      dbProto.exec = function (this: unknown, sql: unknown) {
        for (const part of String(sql)
          .split(/;\s*\n?/)
          .filter((p) => p.trim()))
          countSql(part);
        return exec.call(this, sql);
      };
    }
  }

  // ---- Durable Objects --------------------------------------------------------------------------
  const namespaces = BINDINGS.objects.filter((b) => env[b]).map((b) => [b, env[b]] as [string, object]);
  const classOfId = new Map<string, string>();
  if (namespaces.length > 0) {
    const proto = Object.getPrototypeOf(namespaces[0]![1]) as Record<string, AnyFn>;
    const names = new Map<string, string>();
    const origIdFromName = proto.idFromName!;
    proto.idFromName = function (this: object, name: unknown) {
      const id = origIdFromName.call(this, name) as { toString(): string };
      names.set(id.toString(), String(name));
      const cls = classOfNamespace(this, env);
      if (cls) classOfId.set(id.toString(), cls);
      return id;
    };
    const origGet = proto.get!;
    proto.get = function (this: object, id: unknown, ...rest: unknown[]) {
      const stub = origGet.call(this, id, ...rest) as Record<string | symbol, unknown>;
      const hex = String((id as { toString(): string }).toString());
      const cls = classOfNamespace(this, env) ?? classOfId.get(hex) ?? "?";
      const objectKey = `${cls}:${names.get(hex) ?? hex.slice(0, 12)}`;
      const counted = new Proxy(stub, {
        get(target, prop) {
          const v = Reflect.get(target, prop);
          if (typeof prop !== "string" || prop === "then" || typeof v !== "function") return v;
          return (...a: unknown[]) => {
            const k = c().objects;
            bump(k.byClass, cls);
            bump(k.byMethod, `${cls}.${prop}`);
            bump(k.byObject, objectKey);
            // An RPC method is itself a stub: call it as one (its `apply` would be an RPC call).
            return (target as Record<string, AnyFn>)[prop]!(...a);
          };
        },
      });
      uncountedStubs.set(counted, stub);
      return counted;
    };
  }

  for (const [cls, klass] of Object.entries(classes)) {
    const p = klass.prototype as Record<string, AnyFn>;
    const alarm = p.alarm;
    if (typeof alarm !== "function") continue;
    p.alarm = function (this: unknown, ...a: unknown[]) {
      bump(c().alarms, cls);
      return alarm.apply(this, a);
    };
  }

  // ---- Queues -------------------------------------------------------------------------------------
  const queue = env[BINDINGS.queue];
  if (queue) {
    const qp = Object.getPrototypeOf(queue) as Record<string, AnyFn>;
    const send = qp.send!;
    const sendBatch = qp.sendBatch!;
    qp.send = function (this: unknown, ...a: unknown[]) {
      c().queue.sends++;
      c().queue.messages++;
      return send.apply(this, a);
    };
    qp.sendBatch = function (this: unknown, msgs: unknown, ...a: unknown[]) {
      c().queue.sends++;
      c().queue.messages += (msgs as unknown[]).length;
      return sendBatch.call(this, msgs, ...a);
    };
  }

  // ---- outbound fetch -----------------------------------------------------------------------------
  const realFetch = globalThis.fetch;
  globalThis.fetch = function (this: unknown, ...a: Parameters<typeof fetch>) {
    c().fetches++;
    return realFetch.apply(this, a);
  } as typeof fetch;

  return meter;
}

/** The binding name of a namespace object, when `env` holds that very object. */
function classOfNamespace(ns: object, env: Record<string, unknown>): string | null {
  for (const k of BINDINGS.objects) if (env[k] === ns) return k;
  return null;
}

/**
 * `wrangler dev` with `RUNNER_METER=true` (scripts/simulate.mjs): installs the recorder on the first
 * invocation, and answers `GET /__meter` (`?reset=1` also starts the counts afresh) with the counts.
 * Without the flag it does nothing and answers null, so production never meters nor serves this.
 */
export function meterHook(req: Request | null, env: object, classes: Record<string, { prototype: object }>): Response | null {
  if ((env as { RUNNER_METER?: string }).RUNNER_METER !== "true") return null;
  const meter = installMeter(env as Record<string, unknown>, classes);
  if (!req) return null;
  const url = new URL(req.url);
  if (url.pathname !== "/__meter" || req.method !== "GET") return null;
  const body = { at: Date.now(), counts: meter.snapshot() };
  if (url.searchParams.get("reset") === "1") meter.reset();
  return Response.json(body, { headers: { "cache-control": "no-store" } });
}
