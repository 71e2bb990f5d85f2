//! User-interactive authentication (spec: client-server-api, "User-Interactive
//! Authentication API"): which flows an operation offers, when a session is complete, and
//! the 401 body that tells the client what is left. Sessions are stored by `store::uia`.

use serde_json::{json, Map, Value};

pub const DUMMY: &str = "m.login.dummy";
pub const PASSWORD: &str = "m.login.password";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";
/// Approval in the account management web UI (spec v1.17, "OAuth authentication"); only
/// `/keys/device_signing/upload` offers it, to clients that signed in with OAuth 2.0.
pub const OAUTH: &str = "m.oauth";
/// The UIA operation name of a cross-signing key upload (the account page approves it).
pub const CROSS_SIGNING_UPLOAD: &str = "device_signing_upload";

/// A set of flows; each flow is the list of stages that together complete it.
#[derive(Clone, Debug)]
pub struct Flows(pub Vec<Vec<&'static str>>);

impl Flows {
    pub fn single(stage: &'static str) -> Self {
        Flows(vec![vec![stage]])
    }

    /// Whether some flow has all of its stages in `completed`.
    pub fn is_complete(&self, completed: &[String]) -> bool {
        self.0.iter().any(|flow| flow.iter().all(|s| completed.iter().any(|c| c == s)))
    }

    /// Whether `stage` belongs to any flow.
    pub fn offers(&self, stage: &str) -> bool {
        self.0.iter().any(|f| f.contains(&stage))
    }

    /// The 401 body: flows, params, session, completed stages, and the error of the last
    /// attempt if it failed.
    pub fn challenge(&self, session: &str, completed: &[String], error: Option<(&str, &str)>) -> Value {
        let mut body = Map::new();
        body.insert("flows".into(), self.0.iter().map(|f| json!({ "stages": f })).collect());
        body.insert("params".into(), json!({}));
        body.insert("session".into(), json!(session));
        if !completed.is_empty() {
            body.insert("completed".into(), json!(completed));
        }
        if let Some((errcode, msg)) = error {
            body.insert("errcode".into(), json!(errcode));
            body.insert("error".into(), json!(msg));
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion() {
        let f = Flows(vec![vec![REGISTRATION_TOKEN, DUMMY], vec![PASSWORD]]);
        assert!(!f.is_complete(&[]));
        assert!(!f.is_complete(&[DUMMY.into()]));
        assert!(f.is_complete(&[DUMMY.into(), REGISTRATION_TOKEN.into()]));
        assert!(f.is_complete(&[PASSWORD.into()]));
        assert!(f.offers(DUMMY) && !f.offers("m.login.sso"));
    }

    #[test]
    fn challenge_body() {
        let f = Flows::single(PASSWORD);
        let b = f.challenge("S", &[], None);
        assert_eq!(b, json!({"flows":[{"stages":["m.login.password"]}],"params":{},"session":"S"}));
        let b = f.challenge("S", &["x".into()], Some(("M_FORBIDDEN", "Invalid password")));
        assert_eq!(b["completed"], json!(["x"]));
        assert_eq!(b["errcode"], "M_FORBIDDEN");
    }
}
