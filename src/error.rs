//! One error type for the whole server, and the one table that maps a Matrix
//! `errcode` to its HTTP status (spec: client-server-api, "Standard error response").
//!
//! Build errors with the [`err!`](crate::err) macro: `err!(Forbidden, "not allowed")`.
//! Remote and storage failures never reach the client raw: they become
//! `M_UNKNOWN` with a generic message and are logged instead.

use serde_json::{json, Value};

/// The Matrix error codes the server emits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Forbidden,
    UnknownToken {
        soft_logout: bool,
    },
    MissingToken,
    BadJson,
    NotJson,
    NotFound,
    LimitExceeded {
        retry_after_ms: u64,
    },
    Unrecognized,
    /// 405: a known path with a method it does not support.
    MethodNotAllowed,
    Unknown,
    Unauthorized,
    UserDeactivated,
    UserInUse,
    InvalidUsername,
    Exclusive,
    GuestAccessForbidden,
    MissingParam,
    InvalidParam,
    TooLarge,
    /// 409: `PUT /upload/{serverName}/{mediaId}` for media that already has content.
    CannotOverwriteMedia,
    /// 504: media created but not uploaded within the client's `timeout_ms`.
    NotYetUploaded,
    UserLocked,
    WeakPassword,
    ServerNotTrusted,
    UnsupportedRoomVersion,
    RoomInUse,
    BadAlias,
    /// 409: e.g. a room alias that already exists (`M_UNKNOWN`, as Synapse).
    Conflict,
    /// 403: a key backup write to a version that is not the current one; the body names
    /// the current version (spec: `PUT /room_keys/keys`).
    WrongRoomKeysVersion {
        current_version: String,
    },
    /// 405 `M_BAD_JSON`: account data the server manages (`m.fully_read`, `m.push_rules`)
    /// written through the account data API (spec: `PUT /user/{userId}/account_data/{type}`).
    ServerManaged,
    /// 400: a profile change would take the profile over 64 KiB (spec v1.16, `PUT /profile`).
    ProfileTooLarge,
    /// 400: a profile key longer than 255 bytes.
    KeyTooLarge,
    /// 403: the invitee blocks invites (spec v1.18, "Invite permission").
    InviteBlocked,
    /// 502 `M_UNKNOWN`: another server could not be reached, or answered with something
    /// unusable, for a request made on the client's behalf (e.g. remote media, as Synapse).
    BadGateway,
    /// 502 `M_TOO_LARGE`: what another server holds is over our limit (remote media).
    RemoteTooLarge,
    /// 400: a sliding sync `pos` the server no longer knows (MSC4186: the client starts a
    /// new connection).
    UnknownPos,
    /// Anything the server did wrong; the message is generic.
    Internal,
}

impl ErrorKind {
    /// The `errcode` string.
    pub fn errcode(&self) -> &'static str {
        use ErrorKind::*;
        match self {
            Forbidden => "M_FORBIDDEN",
            UnknownToken { .. } => "M_UNKNOWN_TOKEN",
            MissingToken => "M_MISSING_TOKEN",
            BadJson | ServerManaged => "M_BAD_JSON",
            NotJson => "M_NOT_JSON",
            NotFound => "M_NOT_FOUND",
            LimitExceeded { .. } => "M_LIMIT_EXCEEDED",
            Unrecognized | MethodNotAllowed => "M_UNRECOGNIZED",
            Unknown | Internal | BadGateway => "M_UNKNOWN",
            Unauthorized => "M_UNAUTHORIZED",
            UserDeactivated => "M_USER_DEACTIVATED",
            UserInUse => "M_USER_IN_USE",
            InvalidUsername => "M_INVALID_USERNAME",
            Exclusive => "M_EXCLUSIVE",
            GuestAccessForbidden => "M_GUEST_ACCESS_FORBIDDEN",
            MissingParam => "M_MISSING_PARAM",
            InvalidParam => "M_INVALID_PARAM",
            TooLarge | RemoteTooLarge => "M_TOO_LARGE",
            CannotOverwriteMedia => "M_CANNOT_OVERWRITE_MEDIA",
            NotYetUploaded => "M_NOT_YET_UPLOADED",
            UserLocked => "M_USER_LOCKED",
            WeakPassword => "M_WEAK_PASSWORD",
            ServerNotTrusted => "M_SERVER_NOT_TRUSTED",
            UnsupportedRoomVersion => "M_UNSUPPORTED_ROOM_VERSION",
            RoomInUse => "M_ROOM_IN_USE",
            BadAlias => "M_BAD_ALIAS",
            Conflict => "M_UNKNOWN",
            WrongRoomKeysVersion { .. } => "M_WRONG_ROOM_KEYS_VERSION",
            InviteBlocked => "M_INVITE_BLOCKED",
            ProfileTooLarge => "M_PROFILE_TOO_LARGE",
            KeyTooLarge => "M_KEY_TOO_LARGE",
            UnknownPos => "M_UNKNOWN_POS",
        }
    }

    /// The kind that [`errcode`](Self::errcode) and [`status`](Self::status) map to this
    /// errcode and status (the status tells apart kinds sharing an errcode, e.g. `M_BAD_JSON`
    /// 400 and 405); the fields some kinds carry come from the error body. Read off the one
    /// table, so it cannot disagree with it.
    pub fn from_errcode(errcode: &str, status: u16, body: &Value) -> Option<ErrorKind> {
        ErrorKind::every(body).into_iter().find(|k| k.errcode() == errcode && k.status() == status)
    }

    /// One of each kind, with the fields from `body` (as [`Error::to_response`] writes them).
    fn every(body: &Value) -> Vec<ErrorKind> {
        use ErrorKind::*;
        vec![
            Forbidden,
            UnknownToken { soft_logout: body["soft_logout"].as_bool().unwrap_or(false) },
            MissingToken,
            BadJson,
            NotJson,
            NotFound,
            LimitExceeded { retry_after_ms: body["retry_after_ms"].as_u64().unwrap_or(1000) },
            Unrecognized,
            MethodNotAllowed,
            Unknown,
            Unauthorized,
            UserDeactivated,
            UserInUse,
            InvalidUsername,
            Exclusive,
            GuestAccessForbidden,
            MissingParam,
            InvalidParam,
            TooLarge,
            CannotOverwriteMedia,
            NotYetUploaded,
            UserLocked,
            WeakPassword,
            ServerNotTrusted,
            UnsupportedRoomVersion,
            RoomInUse,
            BadAlias,
            Conflict,
            WrongRoomKeysVersion { current_version: body["current_version"].as_str().unwrap_or_default().to_owned() },
            ServerManaged,
            ProfileTooLarge,
            KeyTooLarge,
            InviteBlocked,
            BadGateway,
            RemoteTooLarge,
            UnknownPos,
            Internal,
        ]
    }

    /// The HTTP status for this errcode: the one table.
    pub fn status(&self) -> u16 {
        use ErrorKind::*;
        match self {
            Forbidden | UserDeactivated | GuestAccessForbidden | ServerNotTrusted | WrongRoomKeysVersion { .. } | InviteBlocked => 403,
            UnknownToken { .. } | MissingToken | Unauthorized | UserLocked => 401,
            NotFound | Unrecognized => 404,
            CannotOverwriteMedia => 409,
            NotYetUploaded => 504,
            MethodNotAllowed | ServerManaged => 405,
            Conflict => 409,
            LimitExceeded { .. } => 429,
            TooLarge => 413,
            Internal => 500,
            BadGateway | RemoteTooLarge => 502,
            BadJson
            | NotJson
            | Unknown
            | UserInUse
            | InvalidUsername
            | Exclusive
            | MissingParam
            | InvalidParam
            | WeakPassword
            | UnsupportedRoomVersion
            | RoomInUse
            | BadAlias
            | ProfileTooLarge
            | KeyTooLarge
            | UnknownPos => 400,
        }
    }
}

/// The server's error type.
#[derive(Debug)]
pub enum Error {
    /// A Matrix error for the client.
    Matrix(ErrorKind, String),
    /// User-interactive auth must continue: HTTP 401 with this body (spec: "User-interactive
    /// authentication API").
    Uia(Value),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `err!(Forbidden, "message {}", x)` builds an [`Error::Matrix`].
#[macro_export]
macro_rules! err {
    ($kind:ident, $($fmt:tt)+) => {
        $crate::error::Error::Matrix($crate::error::ErrorKind::$kind, format!($($fmt)+))
    };
    ($kind:expr, $($fmt:tt)+) => {
        $crate::error::Error::Matrix($kind, format!($($fmt)+))
    };
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Matrix(k, _) => k.clone(),
            Error::Uia(_) => ErrorKind::Unauthorized,
        }
    }

    /// HTTP status and JSON body.
    pub fn to_response(&self) -> (u16, Value) {
        match self {
            Error::Uia(body) => (401, body.clone()),
            Error::Matrix(kind, msg) => {
                let mut body = serde_json::Map::new();
                body.insert("errcode".into(), json!(kind.errcode()));
                body.insert("error".into(), json!(msg));
                match kind {
                    ErrorKind::UnknownToken { soft_logout } => {
                        body.insert("soft_logout".into(), json!(soft_logout));
                    }
                    ErrorKind::LimitExceeded { retry_after_ms } => {
                        body.insert("retry_after_ms".into(), json!(retry_after_ms));
                    }
                    ErrorKind::WrongRoomKeysVersion { current_version } => {
                        body.insert("current_version".into(), json!(current_version));
                    }
                    _ => {}
                }
                (kind.status(), Value::Object(body))
            }
        }
    }

    /// Rebuilds an error from one of our own components' error responses (the Durable
    /// Objects answer with [`Error::to_response`]): the same kind and message. Internal
    /// failures, and anything that does not parse, become the generic internal error.
    /// Never used for other servers' errors, which are not relayed.
    pub fn from_response(status: u16, body: &Value) -> Self {
        if status == 401 && body.get("flows").is_some() {
            return Error::Uia(body.clone());
        }
        let kind = body["errcode"].as_str().and_then(|code| ErrorKind::from_errcode(code, status, body));
        match (kind, body["error"].as_str()) {
            (Some(kind), Some(msg)) if kind != ErrorKind::Internal => Error::Matrix(kind, msg.to_owned()),
            (Some(ErrorKind::Internal), _) => Error::Matrix(ErrorKind::Internal, "Internal server error".into()),
            _ => Error::internal(format!("unparsable error response: HTTP {status}")),
        }
    }

    /// An internal failure: the detail is for the log, the client gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        log_error(&format!("internal error: {detail}"));
        Error::Matrix(ErrorKind::Internal, "Internal server error".into())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::internal(format!("json: {e}"))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Matrix(k, m) => write!(f, "{}: {}", k.errcode(), m),
            Error::Uia(_) => write!(f, "user-interactive auth required"),
        }
    }
}

/// Logs to the Worker console on wasm, stderr natively.
pub fn log_error(msg: &str) {
    #[cfg(target_arch = "wasm32")]
    worker::console_error!("{}", msg);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_table() {
        assert_eq!(err!(Forbidden, "x").to_response().0, 403);
        assert_eq!(err!(NotJson, "x").to_response().0, 400);
        assert_eq!(err!(TooLarge, "x").to_response().0, 413);
        assert_eq!(err!(MethodNotAllowed, "x").to_response().1["errcode"], "M_UNRECOGNIZED");
        assert_eq!(err!(MethodNotAllowed, "x").to_response().0, 405);
        let (s, b) = err!(ErrorKind::LimitExceeded { retry_after_ms: 1500 }, "slow").to_response();
        assert_eq!((s, b["retry_after_ms"].as_u64()), (429, Some(1500)));
        let (s, b) = err!(ErrorKind::UnknownToken { soft_logout: true }, "t").to_response();
        assert_eq!((s, b["soft_logout"].as_bool()), (401, Some(true)));
        let (s, b) = err!(ErrorKind::WrongRoomKeysVersion { current_version: "2".into() }, "w").to_response();
        assert_eq!((s, b["errcode"].as_str(), b["current_version"].as_str()), (403, Some("M_WRONG_ROOM_KEYS_VERSION"), Some("2")));
    }

    /// Every kind, each once: adding a kind breaks this match until it is listed in
    /// [`ErrorKind::every`] (the count below).
    fn ordinal(k: &ErrorKind) -> usize {
        use ErrorKind::*;
        match k {
            Forbidden => 0,
            UnknownToken { .. } => 1,
            MissingToken => 2,
            BadJson => 3,
            NotJson => 4,
            NotFound => 5,
            LimitExceeded { .. } => 6,
            Unrecognized => 7,
            MethodNotAllowed => 8,
            Unknown => 9,
            Unauthorized => 10,
            UserDeactivated => 11,
            UserInUse => 12,
            InvalidUsername => 13,
            Exclusive => 14,
            GuestAccessForbidden => 15,
            MissingParam => 16,
            InvalidParam => 17,
            TooLarge => 18,
            CannotOverwriteMedia => 19,
            NotYetUploaded => 20,
            UserLocked => 21,
            WeakPassword => 22,
            ServerNotTrusted => 23,
            UnsupportedRoomVersion => 24,
            RoomInUse => 25,
            BadAlias => 26,
            Conflict => 27,
            WrongRoomKeysVersion { .. } => 28,
            ServerManaged => 29,
            ProfileTooLarge => 30,
            KeyTooLarge => 31,
            InviteBlocked => 32,
            BadGateway => 33,
            RemoteTooLarge => 34,
            Internal => 35,
            UnknownPos => 36,
        }
    }

    #[test]
    fn every_kind_is_listed_once() {
        let all = ErrorKind::every(&Value::Null);
        let mut seen: Vec<usize> = all.iter().map(ordinal).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..37).collect::<Vec<_>>());
    }

    /// What crosses the Durable Object boundary: the object answers `to_response`, the
    /// caller rebuilds with `from_response` from the JSON text.
    fn across(e: &Error) -> Error {
        let (status, body) = e.to_response();
        let text = body.to_string();
        Error::from_response(status, &serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn every_kind_crosses_the_boundary_intact() {
        let samples = ErrorKind::every(&json!({ "soft_logout": true, "retry_after_ms": 2500, "current_version": "7" }));
        for kind in samples {
            let e = err!(kind.clone(), "message for {}", kind.errcode());
            let back = across(&e);
            if kind == ErrorKind::Internal {
                assert_eq!(back.to_response(), Error::Matrix(ErrorKind::Internal, "Internal server error".into()).to_response());
            } else {
                assert_eq!(back.kind(), kind);
                assert_eq!(back.to_response(), e.to_response(), "{kind:?}");
            }
        }
    }

    #[test]
    fn internal_and_unknown_answers_stay_generic() {
        let back = across(&Error::internal("db exploded: secret path"));
        assert_eq!(back.kind(), ErrorKind::Internal);
        let raw = Error::from_response(500, &json!({"errcode": "M_UNKNOWN", "error": "secret detail"}));
        assert_eq!(raw.to_response().1["error"], "Internal server error");
        let odd = Error::from_response(418, &json!({"errcode": "M_FORBIDDEN", "error": "teapot"}));
        assert_eq!(odd.kind(), ErrorKind::Internal);
        let not_json = Error::from_response(502, &Value::Null);
        assert_eq!(not_json.kind(), ErrorKind::Internal);
    }

    #[test]
    fn uia_crosses_the_boundary() {
        let body = json!({ "flows": [{"stages": ["m.login.password"]}], "session": "s", "params": {} });
        let back = across(&Error::Uia(body.clone()));
        assert_eq!(back.to_response(), (401, body));
    }

    #[test]
    fn internal_errors_hide_detail() {
        let (s, b) = Error::internal("db exploded: secret path").to_response();
        assert_eq!(s, 500);
        assert!(!b["error"].as_str().unwrap().contains("secret"));
    }
}
