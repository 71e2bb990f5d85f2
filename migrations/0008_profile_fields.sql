-- Custom profile fields (spec v1.16, MSC4133: `PUT /profile/{userId}/{keyName}`), `m.tz`
-- included. `displayname` and `avatar_url` stay in `users`. See src/store/profile.rs.
-- No foreign keys (D1 design rule): deactivation deletes a user's rows (store::accounts).

CREATE TABLE profile_fields (
    user_id TEXT NOT NULL,
    key     TEXT NOT NULL,                   -- Common Namespaced Identifier Grammar, <= 255 bytes
    value   TEXT NOT NULL,                   -- the field's JSON value, as compact JSON text
    PRIMARY KEY (user_id, key)
);
