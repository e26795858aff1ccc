// The baseline for `npm run bench -- workerd`: a Worker that does nothing, run under its own
// `wrangler dev` beside Runner's, so the local runtime's own growth per request can be told apart.
export default {
  fetch() {
    return new Response("ok");
  },
};
