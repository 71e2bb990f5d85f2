//! Writes into `serde_json::Value` that never panic: `v["k"] = x` (IndexMut) panics when `v`
//! is neither an object nor null, which JSON from outside (room state, request bodies, stored
//! events) may be.

use serde_json::{Map, Value};

pub trait JsonExt {
    /// `self[key] = value` without the panic: an object gets the key, null becomes an object
    /// with it (as IndexMut does), anything else is left unchanged.
    fn set(&mut self, key: &str, value: Value);

    /// The object at `self[key]`, made an empty object first when it is missing or not an
    /// object; `None` when `self` itself is neither an object nor null.
    fn object_at(&mut self, key: &str) -> Option<&mut Map<String, Value>>;
}

impl JsonExt for Value {
    fn set(&mut self, key: &str, value: Value) {
        if self.is_null() {
            *self = Value::Object(Map::new());
        }
        if let Some(o) = self.as_object_mut() {
            o.insert(key.to_owned(), value);
        }
    }

    fn object_at(&mut self, key: &str) -> Option<&mut Map<String, Value>> {
        if self.is_null() {
            *self = Value::Object(Map::new());
        }
        let inner = self.as_object_mut()?.entry(key).or_insert(Value::Null);
        if !inner.is_object() {
            *inner = Value::Object(Map::new());
        }
        inner.as_object_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::JsonExt;
    use serde_json::json;

    #[test]
    fn set_and_object_at() {
        let mut v = json!({ "a": 1 });
        v.set("b", json!(2));
        assert_eq!(v, json!({ "a": 1, "b": 2 }));
        let mut n = json!(null);
        n.set("k", json!(true));
        assert_eq!(n, json!({ "k": true }));
        let mut s = json!("text");
        s.set("k", json!(1));
        assert!(s.object_at("k").is_none());
        assert_eq!(s, json!("text"));
        let mut u = json!({ "unsigned": 5 });
        u.object_at("unsigned").map(|o| o.insert("x".into(), json!(1)));
        assert_eq!(u, json!({ "unsigned": { "x": 1 } }));
    }
}
