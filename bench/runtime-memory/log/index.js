// One kind of work for bench/runtime-memory.mjs: what the local runtime keeps per request for it.
export default {
  fetch(req) {
    console.log(JSON.stringify({ level: "info", msg: "request", path: new URL(req.url).pathname, t: Date.now() }));
    return new Response("ok");
  },
};
