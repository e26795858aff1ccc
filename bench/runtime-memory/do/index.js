// One kind of work for bench/runtime-memory.mjs: what the local runtime keeps per request for it.
import { DurableObject } from "cloudflare:workers";
export class Obj extends DurableObject {
  async ping(x) {
    return x + 1;
  }
}
export default {
  async fetch(_req, env) {
    const s = env.OBJ.get(env.OBJ.idFromName("a" + ((Math.random() * 100) | 0)));
    return new Response(String(await s.ping(1)));
  },
};
