//! Refresh token rotation (spec: client-server-api, "Refresh token grant"; RFC 9700
//! section 4.14.2).
//!
//! A successful authorisation code exchange starts a *session* (a refresh token family):
//! one device, one client, one chain of refresh tokens. Each refresh uses up the presented
//! token and issues the next one. Presenting a used token again means that it leaked, or
//! that two parties hold the family: the whole session is revoked, so the newest refresh
//! token and every access token of the session stop working too.
//!
//! Trade-off: the spec also asks servers to let a client retry a refresh whose response
//! was lost. With strict reuse detection such a client is logged out and signs in again;
//! Stratus prefers that to leaving a replay window open.

/// What the store knows about a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshState {
    pub client_id: String,
    /// The token was already exchanged.
    pub used: bool,
    /// The session was revoked (logout, reuse detection, device deletion).
    pub session_revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Use up the token and issue the next pair.
    Rotate,
    /// A used token came back: revoke the whole session, answer `invalid_grant`.
    RevokeFamily,
    /// `invalid_grant` with this description; nothing changes.
    Reject(&'static str),
}

/// Decides what a refresh request with this token does. `client_id` is the one the client
/// authenticated as (public clients send it in the body).
pub fn decide(state: Option<&RefreshState>, client_id: &str) -> Decision {
    let Some(s) = state else {
        return Decision::Reject("Unknown refresh token");
    };
    if s.session_revoked {
        return Decision::Reject("The session has been revoked");
    }
    if s.client_id != client_id {
        // RFC 6749 section 6: the token is bound to the client it was issued to.
        return Decision::Reject("The refresh token was issued to another client");
    }
    if s.used {
        return Decision::RevokeFamily;
    }
    Decision::Rotate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(used: bool, revoked: bool) -> RefreshState {
        RefreshState { client_id: "c".into(), used, session_revoked: revoked }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "c"), Decision::Reject("Unknown refresh token"));
        assert_eq!(decide(Some(&st(false, false)), "c"), Decision::Rotate);
        assert_eq!(decide(Some(&st(true, false)), "c"), Decision::RevokeFamily);
        assert!(matches!(decide(Some(&st(false, true)), "c"), Decision::Reject(_)));
        assert!(matches!(decide(Some(&st(true, true)), "c"), Decision::Reject(_)));
        assert!(matches!(decide(Some(&st(false, false)), "other"), Decision::Reject(_)));
        // Another client replaying a used token does not get to kill the session.
        assert!(matches!(decide(Some(&st(true, false)), "other"), Decision::Reject(_)));
    }
}
