-- Media (issue 6): one row per media ID. The bytes are in R2 under `sha256/<hex>` (the
-- SHA-256 of the content), so identical uploads share one object; thumbnails are cached in
-- R2 under `thumb/<hex>/<w>x<h>-<method>` and need no row. No foreign keys (D1 design rule).

CREATE TABLE media (
    media_id          TEXT PRIMARY KEY,          -- the path part of mxc://<server>/<media_id>
    user_id           TEXT NOT NULL,             -- uploader (or creator, for create-then-upload)
    content_type      TEXT,                      -- normalised at upload; NULL until uploaded
    filename          TEXT,                      -- sanitised ?filename= of the upload
    size              INTEGER,                   -- bytes; NULL until uploaded
    sha256            TEXT,                      -- hex content hash = R2 key; NULL until uploaded
    created_ts        INTEGER NOT NULL,          -- when the ID was created (the legacy freeze compares this)
    uploaded_ts       INTEGER,                   -- when the content arrived
    unused_expires_ts INTEGER,                   -- create-then-upload: deadline for the upload
    quarantined       INTEGER NOT NULL DEFAULT 0 -- never served while set
);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_pending ON media (user_id, uploaded_ts, unused_expires_ts);
