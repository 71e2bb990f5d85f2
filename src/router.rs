//! The route table: which handler serves a method and path. Matching is native so that the
//! 404-versus-405 rules are unit-tested; `api::dispatch` maps a [`Route`] to its handler.

use crate::err;
use crate::error::Result;
use crate::http::Method::{self, *};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Versions,
    WellKnownClient,
    WellKnownServer,
    Capabilities,
    KeyServer,
    Register,
    RegisterAvailable,
    RegistrationTokenValidity,
    LoginFlows,
    Login,
    LoginGetToken,
    Logout,
    LogoutAll,
    Whoami,
    ChangePassword,
    Deactivate,
    Refresh,
    Devices,
    GetDevice,
    UpdateDevice,
    DeleteDevice,
    DeleteDevices,
    Profile,
    GetProfileField,
    SetProfileField,
    AdminRegisterNonce,
    AdminRegister,
    Health,
    AuthMetadata,
    OpenIdConfiguration,
    Jwks,
    OAuthRegister,
    OAuthAuthorize,
    OAuthAuthorizePost,
    OAuthToken,
    OAuthRevoke,
    OAuthUserinfo,
    Account,
    AccountPost,
}

/// `{}` matches one path segment, which is captured (percent-decoded).
const ROUTES: &[(Method, &str, Route)] = &[
    (Get, "/_matrix/client/versions", Route::Versions),
    (Get, "/.well-known/matrix/client", Route::WellKnownClient),
    (Get, "/.well-known/matrix/server", Route::WellKnownServer),
    (Get, "/_matrix/client/v3/capabilities", Route::Capabilities),
    (Get, "/_matrix/key/v2/server", Route::KeyServer),
    (Get, "/_matrix/key/v2/server/{}", Route::KeyServer),
    (Post, "/_matrix/client/v3/register", Route::Register),
    (Get, "/_matrix/client/v3/register/available", Route::RegisterAvailable),
    (Get, "/_matrix/client/v1/register/m.login.registration_token/validity", Route::RegistrationTokenValidity),
    (Get, "/_matrix/client/v3/login", Route::LoginFlows),
    (Post, "/_matrix/client/v3/login", Route::Login),
    (Post, "/_matrix/client/v1/login/get_token", Route::LoginGetToken),
    (Post, "/_matrix/client/v3/logout", Route::Logout),
    (Post, "/_matrix/client/v3/logout/all", Route::LogoutAll),
    (Get, "/_matrix/client/v3/account/whoami", Route::Whoami),
    (Post, "/_matrix/client/v3/account/password", Route::ChangePassword),
    (Post, "/_matrix/client/v3/account/deactivate", Route::Deactivate),
    (Post, "/_matrix/client/v3/refresh", Route::Refresh),
    (Get, "/_matrix/client/v3/devices", Route::Devices),
    (Get, "/_matrix/client/v3/devices/{}", Route::GetDevice),
    (Put, "/_matrix/client/v3/devices/{}", Route::UpdateDevice),
    (Delete, "/_matrix/client/v3/devices/{}", Route::DeleteDevice),
    (Post, "/_matrix/client/v3/delete_devices", Route::DeleteDevices),
    (Get, "/_matrix/client/v3/profile/{}", Route::Profile),
    (Get, "/_matrix/client/v3/profile/{}/{}", Route::GetProfileField),
    (Put, "/_matrix/client/v3/profile/{}/{}", Route::SetProfileField),
    (Get, "/_synapse/admin/v1/register", Route::AdminRegisterNonce),
    (Post, "/_synapse/admin/v1/register", Route::AdminRegister),
    (Get, "/_stratus/health", Route::Health),
    // OAuth 2.0 / OIDC provider (MSC3861).
    (Get, "/_matrix/client/v1/auth_metadata", Route::AuthMetadata),
    (Get, "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata", Route::AuthMetadata),
    (Get, "/.well-known/openid-configuration", Route::OpenIdConfiguration),
    (Get, "/.well-known/jwks.json", Route::Jwks),
    (Post, "/oauth/register", Route::OAuthRegister),
    (Get, "/oauth/authorize", Route::OAuthAuthorize),
    (Post, "/oauth/authorize", Route::OAuthAuthorizePost),
    (Post, "/oauth/token", Route::OAuthToken),
    (Post, "/oauth/revoke", Route::OAuthRevoke),
    (Get, "/oauth/userinfo", Route::OAuthUserinfo),
    (Post, "/oauth/userinfo", Route::OAuthUserinfo),
    (Get, "/account", Route::Account),
    (Post, "/account", Route::AccountPost),
];

/// Finds the route for `method` and `path`: unknown path 404, known path with another
/// method 405, both `M_UNRECOGNIZED` (spec: client-server-api, "Common error codes").
pub fn resolve(method: Method, path: &str) -> Result<(Route, Vec<String>)> {
    let path = normalise(path);
    let segments: Vec<&str> = path.split('/').collect();
    let mut path_known = false;
    for (m, pattern, route) in ROUTES {
        if let Some(params) = match_pattern(pattern, &segments) {
            path_known = true;
            if *m == method {
                return Ok((*route, params));
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
    match p.strip_prefix("/_matrix/client/r0/") {
        Some(rest) => format!("/_matrix/client/v3/{rest}"),
        None => p.to_owned(),
    }
}

fn match_pattern(pattern: &str, segments: &[&str]) -> Option<Vec<String>> {
    let pat: Vec<&str> = pattern.split('/').collect();
    if pat.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, s) in pat.iter().zip(segments) {
        if *p == "{}" {
            if s.is_empty() {
                return None;
            }
            params.push(percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned());
        } else if p != s {
            return None;
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_and_captures() {
        let (r, p) = resolve(Get, "/_matrix/client/v3/profile/%40alice%3Aexample.org/displayname").unwrap();
        assert_eq!(r, Route::GetProfileField);
        assert_eq!(p, vec!["@alice:example.org", "displayname"]);
        assert_eq!(resolve(Get, "/_matrix/client/r0/account/whoami").unwrap().0, Route::Whoami);
        assert_eq!(resolve(Get, "/_matrix/client/versions/").unwrap().0, Route::Versions);
        assert_eq!(resolve(Get, "/_matrix/client/v1/auth_metadata").unwrap().0, Route::AuthMetadata);
        assert_eq!(resolve(Post, "/oauth/authorize").unwrap().0, Route::OAuthAuthorizePost);
        assert_eq!(resolve(Get, "/oauth/authorize").unwrap().0, Route::OAuthAuthorize);
        assert_eq!(resolve(Get, "/oauth/token").unwrap_err().to_response().0, 405);
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
    }
}
