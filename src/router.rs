//! The router: one declaration per endpoint ([`routes!`](crate::routes)), matched natively so
//! that the 404-versus-405 rules and the table's consistency are unit-tested.
//!
//! Each row of `src/routes.rs` names the method, the path with named parameters, the kind of
//! authentication and the handler. `api::handle` resolves the row, authenticates the caller
//! as the row says *before* the handler runs, and hands the handler a typed identity and its
//! parameters by name: a handler cannot forget to authenticate, and adding an endpoint is one
//! row plus its handler.

use crate::err;
use crate::error::Result;
use crate::http::Method;

/// How a caller must authenticate for an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Nobody: public endpoints, and those that authenticate in their own way (the shared-
    /// secret admin registration, OAuth client credentials, optional tokens).
    None,
    /// A user's access token (legacy or OAuth 2.0): the handler gets the [`Authed`] caller.
    ///
    /// [`Authed`]: crate::api::auth::Authed
    User,
    /// A user's access token, and the user is a server admin (else `403 M_FORBIDDEN`).
    Admin,
    /// Another homeserver: the request's `X-Matrix` signature is verified before the handler
    /// runs (spec: server-server-api, "Request Authentication"); the handler gets the origin
    /// as `&ServerName`.
    Server,
}

/// One endpoint: the row `routes!` builds from a declaration.
pub struct Endpoint {
    pub method: Method,
    /// The path pattern; `{name}` matches one non-empty segment, captured percent-decoded.
    pub path: &'static str,
    pub auth: Auth,
    /// The path parameters the handler takes, in the order it takes them (`?name`: may be
    /// absent because another row of the same handler has no such segment).
    pub args: &'static [&'static str],
    /// Part of the legacy login API, off when `AUTH_MODE=oauth`.
    pub legacy_login: bool,
    /// The request body is streamed to the handler, not read first (media uploads).
    pub streams_body: bool,
    /// The handler confirms a cached access token in its own first D1 batch (see `routes`).
    pub confirms_token: bool,
    #[cfg(target_arch = "wasm32")]
    pub handler: crate::api::Handler,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} [{:?}]", self.method.as_str(), self.path, self.auth)
    }
}

/// The path parameters of a matched request, by name.
#[derive(Debug, Default)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// A parameter the row's path always has.
    pub fn get(&self, name: &str) -> Result<&str> {
        self.opt(name).ok_or_else(|| crate::error::Error::internal(format!("route has no parameter {name}")))
    }

    /// A parameter only some of the handler's rows have.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// Finds the endpoint for `method` and `path`: unknown path 404, known path with another
/// method 405, both `M_UNRECOGNIZED` (spec: client-server-api, "Common error codes").
pub fn resolve(method: Method, path: &str) -> Result<(&'static Endpoint, Params)> {
    let path = normalise(path);
    let segments: Vec<&str> = path.split('/').collect();
    let mut path_known = false;
    for ep in crate::routes::ENDPOINTS {
        if let Some(params) = match_pattern(ep.path, &segments) {
            path_known = true;
            if ep.method == method {
                return Ok((ep, params));
            }
        }
    }
    if path_known {
        Err(err!(MethodNotAllowed, "Method not allowed"))
    } else {
        Err(err!(Unrecognized, "Unrecognized request"))
    }
}

/// `r0` is the old name of `v3`; some clients still use it.
fn normalise(path: &str) -> String {
    let p = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    if let Some(rest) = p.strip_prefix("/_matrix/client/r0/") {
        return format!("/_matrix/client/v3/{rest}");
    }
    match p.strip_prefix("/_matrix/media/r0/") {
        Some(rest) => format!("/_matrix/media/v3/{rest}"),
        None => p.to_owned(),
    }
}

fn match_pattern(pattern: &'static str, segments: &[&str]) -> Option<Params> {
    let pat: Vec<&'static str> = pattern.split('/').collect();
    if pat.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, s) in pat.iter().zip(segments) {
        if let Some(name) = p.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            if s.is_empty() {
                return None;
            }
            params.push((name, percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()));
        } else if p != s {
            return None;
        }
    }
    Some(Params(params))
}

/// The pattern of the route a request matches, for logs (never the raw path: it carries room
/// and user IDs, and media or login tokens): the row for `method` if there is one, else any row
/// with that path (a 405, a CORS preflight), else `(unmatched)`.
pub fn route_name(method: Method, path: &str) -> &'static str {
    if let Ok((ep, _)) = resolve(method, path) {
        return ep.path;
    }
    let path = normalise(path);
    let segments: Vec<&str> = path.split('/').collect();
    crate::routes::ENDPOINTS.iter().find(|ep| match_pattern(ep.path, &segments).is_some()).map_or("(unmatched)", |ep| ep.path)
}

/// Whether the route's request body is streamed to the handler instead of read into memory
/// first (media uploads: the size limit is enforced on the bytes as they arrive).
pub fn streams_body(method: Method, path: &str) -> bool {
    resolve(method, path).is_ok_and(|(ep, _)| ep.streams_body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method::*;
    use crate::routes::ENDPOINTS;

    fn path_of(m: Method, p: &str) -> &'static str {
        resolve(m, p).map(|(ep, _)| ep.path).unwrap_or("(none)")
    }

    #[test]
    fn every_row_names_exactly_the_parameters_its_path_has() {
        for ep in ENDPOINTS {
            let in_path: Vec<&str> = ep.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|n| n.strip_suffix('}'))).collect();
            let required: Vec<&str> = ep.args.iter().filter(|a| !a.starts_with('?')).copied().collect();
            for name in &required {
                assert!(in_path.contains(name), "{} {}: handler takes {name}, the path has no such segment", ep.method.as_str(), ep.path);
            }
            for name in &in_path {
                assert!(
                    ep.args.iter().any(|a| a.trim_start_matches('?') == *name),
                    "{} {}: segment {{{name}}} is not passed to the handler",
                    ep.method.as_str(),
                    ep.path
                );
            }
        }
    }

    #[test]
    fn no_two_rows_claim_the_same_method_and_path() {
        for (i, a) in ENDPOINTS.iter().enumerate() {
            for b in ENDPOINTS.iter().skip(i + 1) {
                assert!(!(a.method == b.method && a.path == b.path), "{} {} is declared twice", a.method.as_str(), a.path);
            }
        }
    }

    #[test]
    fn matches_and_captures() {
        let (ep, p) = resolve(Get, "/_matrix/client/v3/profile/%40alice%3Aexample.org/displayname").unwrap();
        assert_eq!(ep.path, "/_matrix/client/v3/profile/{userId}/{keyName}");
        assert_eq!(ep.auth, Auth::None);
        assert_eq!((p.get("userId").unwrap(), p.get("keyName").unwrap()), ("@alice:example.org", "displayname"));
        assert!(p.get("roomId").is_err());
        assert_eq!(path_of(Get, "/_matrix/client/r0/account/whoami"), "/_matrix/client/v3/account/whoami");
        assert_eq!(resolve(Get, "/_matrix/client/v3/account/whoami").unwrap().0.auth, Auth::User);
        assert_eq!(path_of(Get, "/_matrix/client/versions/"), "/_matrix/client/versions");
        assert_eq!(path_of(Get, "/_matrix/client/v1/auth_metadata"), "/_matrix/client/v1/auth_metadata");
        assert_eq!(resolve(Post, "/oauth/authorize").unwrap().0.method, Post);
        assert_eq!(resolve(Get, "/oauth/token").unwrap_err().to_response().0, 405);
        assert!(resolve(Post, "/_matrix/client/v3/login").unwrap().0.legacy_login);
        assert!(!resolve(Get, "/_matrix/client/v3/login").unwrap().0.legacy_login);
        assert_eq!(resolve(Post, "/_synapse/admin/v1/media/quarantine/a/b").unwrap().0.auth, Auth::Admin);
    }

    #[test]
    fn unknown_is_404_wrong_method_is_405() {
        let e = resolve(Get, "/_matrix/client/v3/nope").unwrap_err();
        assert_eq!(e.to_response().0, 404);
        assert_eq!(e.to_response().1["errcode"], "M_UNRECOGNIZED");
        let e = resolve(Delete, "/_matrix/client/v3/login").unwrap_err();
        assert_eq!(e.to_response().0, 405);
        assert_eq!(e.to_response().1["errcode"], "M_UNRECOGNIZED");
        assert!(resolve(Get, "/_matrix/client/v3/devices/").is_ok()); // trailing slash = list
        assert!(resolve(Get, "/_matrix/client/v3/profile//x").is_err());
        assert_eq!(path_of(Get, "/_matrix/client/v3/pushrules/"), "/_matrix/client/v3/pushrules");
        assert_eq!(path_of(Get, "/_matrix/client/v3/pushrules/global/"), "/_matrix/client/v3/pushrules/{scope}");
        assert_eq!(
            path_of(Put, "/_matrix/client/v3/pushrules/global/room/%21r%3Ax/enabled"),
            "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/{attr}"
        );
    }

    #[test]
    fn route_names_carry_no_ids() {
        assert_eq!(
            route_name(Put, "/_matrix/client/v3/rooms/%21secret%3Ax/send/m.room.message/txn1"),
            "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"
        );
        assert_eq!(route_name(Options, "/_matrix/client/v3/login"), "/_matrix/client/v3/login");
        assert_eq!(route_name(Get, "/_matrix/client/v3/nope/token123"), "(unmatched)");
    }

    #[test]
    fn media_routes() {
        let (ep, p) = resolve(Get, "/_matrix/client/v1/media/download/example.org/abc/my%20file.txt").unwrap();
        assert_eq!(ep.path, "/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}");
        assert_eq!(p.opt("fileName"), Some("my file.txt"));
        let (_, p) = resolve(Get, "/_matrix/client/v1/media/download/example.org/abc").unwrap();
        assert_eq!(p.opt("fileName"), None);
        assert_eq!(path_of(Get, "/_matrix/media/r0/download/a/b"), "/_matrix/media/v3/download/{serverName}/{mediaId}");
        assert!(streams_body(Post, "/_matrix/media/v3/upload"));
        assert!(streams_body(Put, "/_matrix/media/v3/upload/a/b"));
        assert!(!streams_body(Post, "/_matrix/media/v1/create"));
        assert!(!streams_body(Get, "/_matrix/media/v3/upload"));
        assert_eq!(resolve(Get, "/_matrix/media/v3/upload").unwrap_err().to_response().0, 405);
    }

    #[test]
    fn profile_field_space_and_mutual_rooms_routes() {
        let (ep, p) = resolve(Delete, "/_matrix/client/v3/profile/%40a%3Ax/m.tz").unwrap();
        assert_eq!((ep.path, ep.auth), ("/_matrix/client/v3/profile/{userId}/{keyName}", Auth::User));
        assert_eq!((p.get("userId").unwrap(), p.get("keyName").unwrap()), ("@a:x", "m.tz"));
        assert_eq!(resolve(Delete, "/_matrix/client/v3/profile/%40a%3Ax").unwrap_err().to_response().0, 405);
        let (ep, p) = resolve(Get, "/_matrix/client/v1/rooms/%21space%3Ax/hierarchy").unwrap();
        assert_eq!((ep.path, p.get("roomId").unwrap()), ("/_matrix/client/v1/rooms/{roomId}/hierarchy", "!space:x"));
        assert_eq!(resolve(Post, "/_matrix/client/v1/rooms/%21s%3Ax/hierarchy").unwrap_err().to_response().0, 405);
        assert_eq!(path_of(Get, "/_matrix/client/v1/mutual_rooms"), "/_matrix/client/v1/mutual_rooms");
        assert_eq!(resolve(Post, "/_matrix/client/v1/mutual_rooms").unwrap_err().to_response().0, 405);
    }

    #[test]
    fn only_reviewed_handlers_confirm_cached_tokens() {
        // Each of these handlers confirms a cached token in its first batch on every way out;
        // a new row with the flag needs the same review (revocation must act at once).
        let flagged: Vec<_> = crate::routes::ENDPOINTS.iter().filter(|ep| ep.confirms_token).map(|ep| (ep.method, ep.path)).collect();
        assert_eq!(
            flagged,
            [
                (Post, "/_matrix/media/v3/upload"),
                (Put, "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"),
                (Get, "/_matrix/client/v3/rooms/{roomId}/messages"),
                (Get, "/_matrix/client/v3/sync"),
            ]
        );
        assert!(crate::routes::ENDPOINTS.iter().filter(|ep| ep.confirms_token).all(|ep| ep.auth == Auth::User));
    }

    #[test]
    fn every_authenticated_client_endpoint_is_declared_so() {
        // Endpoints a client calls with a token: the router authenticates them.
        for (m, p) in [
            (Get, "/_matrix/client/v3/sync"),
            (Put, "/_matrix/client/v3/rooms/!r:x/send/m.room.message/t"),
            (Post, "/_matrix/client/v3/rooms/!r:x/invite"),
            (Put, "/_matrix/client/v3/room_keys/keys"),
            (Put, "/_matrix/client/v3/profile/@a:x/displayname"),
            (Get, "/_matrix/client/v3/voip/turnServer"),
        ] {
            assert_eq!(resolve(m, p).unwrap().0.auth, Auth::User, "{p}");
        }
    }

    #[test]
    fn key_backup_routes() {
        let (ep, p) = resolve(Put, "/_matrix/client/v3/room_keys/keys/%21room%3Ax/sess%2Fion").unwrap();
        assert_eq!(ep.path, "/_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}");
        assert_eq!((p.get("roomId").unwrap(), p.get("sessionId").unwrap()), ("!room:x", "sess/ion"));
        assert_eq!(path_of(Get, "/_matrix/client/r0/room_keys/version"), "/_matrix/client/v3/room_keys/version");
        assert_eq!(path_of(Delete, "/_matrix/client/v3/room_keys/keys"), "/_matrix/client/v3/room_keys/keys");
        assert_eq!(resolve(Post, "/_matrix/client/v3/room_keys/version/1").unwrap_err().to_response().0, 405);
    }
}
