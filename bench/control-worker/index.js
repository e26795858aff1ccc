// The control of `npm run bench -- workerd`: a Worker with no logic that asks the local runtime
// for what Runner asks of it per request of the bench's mix (worker/lib/meter.ts counted them):
// one D1 read for the routes that read D1, one Durable Object call for an execution's routes,
// nothing for /health, a 400 or a 401, and one console line for every request (Runner's request
// log). Runner's growth against this one is what Runner itself adds.
import { DurableObject } from "cloudflare:workers";

export class Obj extends DurableObject {
  view(id) {
    return { id, status: "KILLED" };
  }
}

const EXECUTION = /\/executions\/[0-9a-f-]{36}/;

export default {
  async fetch(req, env) {
    const url = new URL(req.url);
    let body = "ok";
    if (url.pathname === "/health" || req.method !== "GET" || req.headers.get("authorization") === "Bearer not-a-token") {
      // Runner answers these without D1 or an object.
    } else if (EXECUTION.test(url.pathname)) {
      body = JSON.stringify(await env.OBJ.get(env.OBJ.idFromName("one")).view(url.pathname));
    } else {
      body = JSON.stringify(await env.DB.prepare("SELECT ?1 AS path").bind(url.pathname).first());
    }
    console.log(JSON.stringify({ time: new Date().toISOString(), level: "info", msg: "request", method: req.method, path: url.pathname }));
    return new Response(body);
  },
};
