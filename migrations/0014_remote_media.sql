-- Remote media cache (issue 14, Federation II): media of other servers fetched over
-- federation (`/_matrix/federation/v1/media/download`). The bytes are in R2 under
-- `sha256/<hex>` like local media (identical content stored once, shared with local
-- uploads); remote thumbnails are cached in R2 under
-- `remote_thumb/<server>/<media_id>/<w>x<h>-<method>` and need no row. No foreign keys.

CREATE TABLE remote_media (
    server_name  TEXT NOT NULL,     -- the server of mxc://<server_name>/<media_id>
    media_id     TEXT NOT NULL,
    sha256       TEXT NOT NULL,     -- hex content hash = R2 key
    content_type TEXT NOT NULL,     -- normalised
    filename     TEXT,              -- from the remote's Content-Disposition, sanitised
    size         INTEGER NOT NULL,  -- bytes
    cached_ts    INTEGER NOT NULL,  -- when it was fetched (the legacy freeze compares this)
    quarantined  INTEGER NOT NULL DEFAULT 0, -- never served while set
    PRIMARY KEY (server_name, media_id)
);
