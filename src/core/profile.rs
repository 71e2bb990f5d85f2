//! Profile fields (spec v1.16, MSC4133; client-server-api, "Profiles" and `profile.yaml`):
//! which key names are accepted, and the size of a profile as the 64 KiB budget counts it.

use serde_json::Value;

use crate::err;
use crate::error::Result;

/// "The supplied profile key exceeds the maximum allowed key length of 255 bytes."
pub const MAX_KEY_BYTES: usize = 255;
/// "The total profile MUST be under 64 KiB" (`M_PROFILE_TOO_LARGE`).
pub const MAX_PROFILE_BYTES: usize = 65536;

/// A profile key: the two classic fields live in the `users` row, everything else
/// (`m.tz` included) is a custom field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileKey<'a> {
    Displayname,
    AvatarUrl,
    Custom(&'a str),
}

/// Checks a key name from the path: `displayname`, `avatar_url`, or the Common Namespaced
/// Identifier Grammar (appendices: `[a-z]` first, then `[a-z0-9._-]`, at most 255). Like
/// Synapse, the length is checked first (`M_KEY_TOO_LARGE`), then the grammar
/// (`M_INVALID_PARAM`).
pub fn parse_key(key: &str) -> Result<ProfileKey<'_>> {
    if key.is_empty() {
        return Err(err!(InvalidParam, "Profile key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(err!(KeyTooLarge, "Profile key longer than {MAX_KEY_BYTES} bytes"));
    }
    match key {
        "displayname" => return Ok(ProfileKey::Displayname),
        "avatar_url" => return Ok(ProfileKey::AvatarUrl),
        _ => {}
    }
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !(first_ok && rest_ok) {
        return Err(err!(InvalidParam, "Invalid profile key: it must follow the Common Namespaced Identifier Grammar"));
    }
    Ok(ProfileKey::Custom(key))
}

/// Checks a custom field's new value. `null` is refused (the spec lets servers reject it, and
/// Synapse does, so that clients use `DELETE`); `m.tz` must be a string (an IANA time zone
/// name, which clients must still treat as untrusted). Other keys take any JSON.
pub fn check_custom_value(key: &str, value: &Value) -> Result<()> {
    match value {
        Value::Null => Err(err!(InvalidParam, "'{key}' can not be null: use DELETE to remove a field")),
        Value::String(s) if key == "m.tz" && (s.is_empty() || s.len() > 255) => Err(err!(InvalidParam, "m.tz must be a time zone name")),
        Value::String(_) => Ok(()),
        _ if key == "m.tz" => Err(err!(BadJson, "m.tz must be a string")),
        _ => Ok(()),
    }
}

/// Bytes that one member `"key":value` adds to the profile's compact JSON, counting its
/// `,` separator. Keys need no escaping (the grammar above), values come as JSON text.
pub fn entry_bytes(key: &str, value_json: &str) -> usize {
    key.len() + value_json.len() + 4
}

/// The size of a profile as compact JSON (`{"k":v,...}`), from its members.
pub fn profile_bytes<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
    let sum: usize = entries.into_iter().map(|(k, v)| entry_bytes(k, v)).sum();
    // n members carry n separators but the JSON has n-1, plus the two braces.
    if sum == 0 {
        2
    } else {
        sum + 1
    }
}

/// The JSON text of a string value (with its quotes and escapes).
pub fn string_json(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(r: Result<ProfileKey<'_>>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => e.kind().errcode(),
        }
    }

    #[test]
    fn key_grammar() {
        assert_eq!(parse_key("displayname").ok(), Some(ProfileKey::Displayname));
        assert_eq!(parse_key("avatar_url").ok(), Some(ProfileKey::AvatarUrl));
        assert_eq!(parse_key("m.tz").ok(), Some(ProfileKey::Custom("m.tz")));
        for ok in ["com.example.pronouns", "org.x-y.z_1", "a", "m.example_field"] {
            assert_eq!(code(parse_key(ok)), "ok", "{ok}");
        }
        for bad in ["", "Com.example", "1abc", ".abc", "com.example/x", "com example", "é.x", "_x"] {
            assert_eq!(code(parse_key(bad)), "M_INVALID_PARAM", "{bad}");
        }
        assert_eq!(code(parse_key(&"a".repeat(255))), "ok");
        assert_eq!(code(parse_key(&"a".repeat(256))), "M_KEY_TOO_LARGE");
        // Too long wins over bad grammar, as in Synapse.
        assert_eq!(code(parse_key(&"A".repeat(300))), "M_KEY_TOO_LARGE");
    }

    #[test]
    fn custom_values() {
        assert!(check_custom_value("com.x", &json!({"a": [1, null]})).is_ok());
        assert!(check_custom_value("com.x", &json!(3)).is_ok());
        assert_eq!(check_custom_value("com.x", &Value::Null).unwrap_err().kind().errcode(), "M_INVALID_PARAM");
        assert!(check_custom_value("m.tz", &json!("Europe/London")).is_ok());
        assert_eq!(check_custom_value("m.tz", &json!(1)).unwrap_err().kind().errcode(), "M_BAD_JSON");
        assert_eq!(check_custom_value("m.tz", &json!("")).unwrap_err().kind().errcode(), "M_INVALID_PARAM");
    }

    #[test]
    fn size_matches_compact_json() {
        let profile = json!({ "displayname": "Ä \"x\"", "avatar_url": "mxc://a/b", "com.x": {"k": [1, "é"]}, "m.tz": "UTC" });
        let map = profile.as_object().unwrap();
        let texts: Vec<(String, String)> = map.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        let n = profile_bytes(texts.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(n, serde_json::to_string(&profile).unwrap().len());
        assert_eq!(profile_bytes([]), 2);
        assert_eq!(profile_bytes([("a", "1")]), r#"{"a":1}"#.len());
        assert_eq!(string_json("a\"b"), r#""a\"b""#);
    }
}
