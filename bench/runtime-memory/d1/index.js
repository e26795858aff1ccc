// One kind of work for bench/runtime-memory.mjs: what the local runtime keeps per request for it.
export default {
  async fetch(_req, env) {
    const r = await env.DB.prepare("SELECT ?1 AS x").bind(Math.random()).first();
    return new Response(String(r.x));
  },
};
