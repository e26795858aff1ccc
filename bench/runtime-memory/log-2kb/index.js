// One kind of work for bench/runtime-memory.mjs: what the local runtime keeps per request for it.
export default {
  fetch(req) {
    const l = JSON.stringify({ level: "info", msg: "request", path: new URL(req.url).pathname, t: Date.now(), pad: "x".repeat(2000) });
    console.log(l);
    return new Response("ok");
  },
};
