//! Scopes (spec: client-server-api, "Scope", "Allocated scope tokens").
//!
//! `urn:matrix:client:api:*` grants the whole client-server API and is required;
//! exactly one `urn:matrix:client:device:<device_id>` allocates the device. The unstable
//! MSC2967 spellings (`urn:matrix:org.matrix.msc2967.client:…`) that older clients send are
//! accepted too. `openid` asks for an ID token. Other tokens are dropped from the granted
//! scope (RFC 6749 section 3.3 lets the server grant less than asked).

pub const API: &str = "urn:matrix:client:api:*";
pub const DEVICE_PREFIX: &str = "urn:matrix:client:device:";
const UNSTABLE_API: &str = "urn:matrix:org.matrix.msc2967.client:api:*";
const UNSTABLE_DEVICE_PREFIX: &str = "urn:matrix:org.matrix.msc2967.client:device:";
pub const OPENID: &str = "openid";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The granted tokens, in the order asked, as the client spelled them.
    pub tokens: Vec<String>,
    pub device_id: String,
    pub openid: bool,
}

impl Scope {
    /// The granted scope string.
    pub fn as_string(&self) -> String {
        self.tokens.join(" ")
    }
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// A client-allocated device ID: 1 to 255 characters from RFC 3986's unreserved set
/// (the spec lets the server refuse others).
pub fn valid_device_id(d: &str) -> bool {
    (1..=255).contains(&d.len()) && d.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

/// Parses and checks a requested scope; the error is the `error_description` of an
/// `invalid_scope` error.
pub fn parse(s: &str) -> Result<Scope, String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut device_id: Option<String> = None;
    let mut api = false;
    let mut openid = false;
    for t in s.split(' ').filter(|t| !t.is_empty()) {
        if !valid_token(t) {
            return Err("The scope contains invalid characters".into());
        }
        if tokens.iter().any(|x| x == t) {
            continue;
        }
        if t == API || t == UNSTABLE_API {
            api = true;
        } else if let Some(d) = t.strip_prefix(DEVICE_PREFIX).or_else(|| t.strip_prefix(UNSTABLE_DEVICE_PREFIX)) {
            if device_id.is_some() {
                return Err("The scope must contain exactly one device token".into());
            }
            if !valid_device_id(d) {
                return Err("The device ID must be 1 to 255 characters of A-Z a-z 0-9 - . _ ~".into());
            }
            device_id = Some(d.to_owned());
        } else if t == OPENID {
            openid = true;
        } else {
            continue; // not granted
        }
        tokens.push(t.to_owned());
    }
    if !api {
        return Err(format!("The scope must include {API}"));
    }
    let device_id = device_id.ok_or_else(|| format!("The scope must include one {DEVICE_PREFIX}<device_id>"))?;
    Ok(Scope { tokens, device_id, openid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_unstable() {
        let s = parse("urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ openid").unwrap();
        assert_eq!(s.device_id, "ABCDEFGHIJ");
        assert!(s.openid);
        assert_eq!(s.as_string(), "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ openid");
        let s = parse("urn:matrix:org.matrix.msc2967.client:api:*  urn:matrix:org.matrix.msc2967.client:device:x-1").unwrap();
        assert_eq!(s.device_id, "x-1");
        assert!(!s.openid);
    }

    #[test]
    fn rules() {
        assert!(parse("urn:matrix:client:device:ABC").unwrap_err().contains("api"));
        assert!(parse("urn:matrix:client:api:*").unwrap_err().contains("device"));
        assert!(parse("urn:matrix:client:api:* urn:matrix:client:device:A urn:matrix:client:device:B").is_err());
        assert!(parse("urn:matrix:client:api:* urn:matrix:client:device:").is_err());
        assert!(parse("urn:matrix:client:api:* urn:matrix:client:device:a/b").is_err());
        assert!(parse("urn:matrix:client:api:* urn:matrix:client:device:A \"x\"").is_err());
        // Unknown tokens are not granted; duplicates collapse.
        let s = parse("urn:matrix:client:api:* email urn:matrix:client:device:A urn:matrix:client:api:*").unwrap();
        assert_eq!(s.as_string(), "urn:matrix:client:api:* urn:matrix:client:device:A");
    }
}
