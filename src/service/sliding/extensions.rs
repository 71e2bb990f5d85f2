//! Sliding sync extensions: each reuses the `/sync` v3 stream builder of the same data.
