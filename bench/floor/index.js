// The floor: a Worker that does nothing. bench/hot_paths.py runs it under the same
// `wrangler dev` (or bench/direct.mjs) as Stratus and reports every endpoint as floor +
// Stratus's own time. It reads the request body (a server has to): workerd closes a
// keep-alive connection whose request body was left unread, which the client would then
// meet on its next request.
export default {
  async fetch(request) {
    await request.arrayBuffer();
    return new Response("{}", { headers: { "content-type": "application/json" } });
  },
};
