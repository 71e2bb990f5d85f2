//! Transaction identifiers (spec: client-server-api, "Transaction identifiers"): the spec
//! scopes a transaction ID to one device and one endpoint. Like Synapse, the endpoint
//! includes its path parameters, so `/send` in room A and `/redact` or `/send` in room B
//! with the same `txnId` are different transactions.

/// The scoped idempotency key for `txn_id` at `scope` (the endpoint's name and its path
/// parameters, e.g. `["send", room_id, event_type]`). A JSON array, so that no two scopes
/// can spell the same key whatever the parameters contain.
pub fn txn_key(scope: &[&str], txn_id: &str) -> String {
    let mut parts: Vec<&str> = scope.to_vec();
    parts.push(txn_id);
    serde_json::Value::from(parts).to_string()
}

#[cfg(test)]
mod tests {
    use super::txn_key;

    #[test]
    fn keys_differ_by_endpoint_and_parameters() {
        let a = txn_key(&["send", "!a:s", "m.room.message"], "t1");
        assert_eq!(a, txn_key(&["send", "!a:s", "m.room.message"], "t1"));
        assert_ne!(a, txn_key(&["send", "!b:s", "m.room.message"], "t1"));
        assert_ne!(a, txn_key(&["send", "!a:s", "m.reaction"], "t1"));
        assert_ne!(a, txn_key(&["redact", "!a:s", "$e"], "t1"));
        // Separators inside parameters cannot make two scopes collide.
        assert_ne!(txn_key(&["send", "a\",\"b"], "c"), txn_key(&["send", "a", "b"], "c"));
    }
}
