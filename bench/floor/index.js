// The floor: a Worker that does nothing. bench/hot_paths.py runs it under the same
// `wrangler dev` as Stratus and reports every endpoint as floor + Stratus's own time.
export default {
  fetch() {
    return new Response("{}", { headers: { "content-type": "application/json" } });
  },
};
