// One kind of work for bench/runtime-memory.mjs: what the local runtime keeps per request for it.
export default {
  fetch() {
    return new Response("ok");
  },
};
