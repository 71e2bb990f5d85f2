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
    DeleteProfileField,
    MediaUpload,
    MediaCreate,
    MediaUploadTo,
    MediaConfig,
    MediaDownload,
    MediaThumbnail,
    MediaPreviewUrl,
    LegacyMediaDownload,
    LegacyMediaThumbnail,
    AdminQuarantineMedia,
    AdminRegisterNonce,
    AdminRegister,
    Health,
    CreateRoom,
    JoinedRooms,
    JoinByIdOrAlias,
    Knock,
    Join,
    Invite,
    Leave,
    Forget,
    Kick,
    Ban,
    Unban,
    Send,
    Redact,
    Messages,
    GetEvent,
    Context,
    State,
    GetStateEvent,
    GetStateEventEmptyKey,
    PutStateEvent,
    PutStateEventEmptyKey,
    Members,
    JoinedMembers,
    SetAlias,
    GetAlias,
    DeleteAlias,
    RoomAliases,
    GetDirectoryVisibility,
    SetDirectoryVisibility,
    PublicRoomsGet,
    PublicRoomsPost,
    Relations,
    RelationsType,
    RelationsTypeEvent,
    Threads,
    Upgrade,
    TimestampToEvent,
    RoomSummary,
    RoomSummaryUnstable,
    SpaceHierarchy,
    MutualRooms,
    ReportEvent,
    ReportRoom,
    ReportUser,
    UserDirectorySearch,
    Sync,
    CreateFilter,
    GetFilter,
    GetAccountData,
    PutAccountData,
    GetRoomAccountData,
    PutRoomAccountData,
    GetTags,
    PutTag,
    DeleteTag,
    Typing,
    Receipt,
    ReadMarkers,
    GetPresence,
    SetPresence,
    PushRules,
    PushRulesGlobal,
    GetPushRule,
    PutPushRule,
    DeletePushRule,
    GetPushRuleAttr,
    PutPushRuleAttr,
    Notifications,
    Pushers,
    SetPusher,
    SendToDevice,
    KeysUpload,
    KeysQuery,
    KeysClaim,
    KeysChanges,
    SigningKeysUpload,
    SignaturesUpload,
    DehydratedDevice,
    PutDehydratedDevice,
    DeleteDehydratedDevice,
    DehydratedEvents,
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
    RoomKeysVersionCreate,
    RoomKeysVersionCurrent,
    RoomKeysVersionGet,
    RoomKeysVersionPut,
    RoomKeysVersionDelete,
    RoomKeysPut,
    RoomKeysGet,
    RoomKeysDelete,
    RoomKeysRoomPut,
    RoomKeysRoomGet,
    RoomKeysRoomDelete,
    RoomKeysSessionPut,
    RoomKeysSessionGet,
    RoomKeysSessionDelete,
    ThirdPartyProtocols,
    ThreePids,
    TurnServer,
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
    (Delete, "/_matrix/client/v3/profile/{}/{}", Route::DeleteProfileField),
    // Media (spec: "Content repository"). Upload and create stay under /_matrix/media.
    (Post, "/_matrix/media/v3/upload", Route::MediaUpload),
    (Put, "/_matrix/media/v3/upload/{}/{}", Route::MediaUploadTo),
    (Post, "/_matrix/media/v1/create", Route::MediaCreate),
    (Get, "/_matrix/client/v1/media/config", Route::MediaConfig),
    (Get, "/_matrix/client/v1/media/download/{}/{}", Route::MediaDownload),
    (Get, "/_matrix/client/v1/media/download/{}/{}/{}", Route::MediaDownload),
    (Get, "/_matrix/client/v1/media/thumbnail/{}/{}", Route::MediaThumbnail),
    (Get, "/_matrix/client/v1/media/preview_url", Route::MediaPreviewUrl),
    // The deprecated /_matrix/media/v3 forms: download and thumbnail are unauthenticated
    // (frozen by default); config and preview_url always required a token.
    (Get, "/_matrix/media/v3/config", Route::MediaConfig),
    (Get, "/_matrix/media/v3/preview_url", Route::MediaPreviewUrl),
    (Get, "/_matrix/media/v3/download/{}/{}", Route::LegacyMediaDownload),
    (Get, "/_matrix/media/v3/download/{}/{}/{}", Route::LegacyMediaDownload),
    (Get, "/_matrix/media/v3/thumbnail/{}/{}", Route::LegacyMediaThumbnail),
    (Post, "/_synapse/admin/v1/media/quarantine/{}/{}", Route::AdminQuarantineMedia),
    (Get, "/_synapse/admin/v1/register", Route::AdminRegisterNonce),
    (Post, "/_synapse/admin/v1/register", Route::AdminRegister),
    (Get, "/_stratus/health", Route::Health),
    (Post, "/_matrix/client/v3/createRoom", Route::CreateRoom),
    (Get, "/_matrix/client/v3/joined_rooms", Route::JoinedRooms),
    (Post, "/_matrix/client/v3/join/{}", Route::JoinByIdOrAlias),
    (Post, "/_matrix/client/v3/knock/{}", Route::Knock),
    (Post, "/_matrix/client/v3/rooms/{}/join", Route::Join),
    (Post, "/_matrix/client/v3/rooms/{}/invite", Route::Invite),
    (Post, "/_matrix/client/v3/rooms/{}/leave", Route::Leave),
    (Post, "/_matrix/client/v3/rooms/{}/forget", Route::Forget),
    (Post, "/_matrix/client/v3/rooms/{}/kick", Route::Kick),
    (Post, "/_matrix/client/v3/rooms/{}/ban", Route::Ban),
    (Post, "/_matrix/client/v3/rooms/{}/unban", Route::Unban),
    (Put, "/_matrix/client/v3/rooms/{}/send/{}/{}", Route::Send),
    (Put, "/_matrix/client/v3/rooms/{}/redact/{}/{}", Route::Redact),
    (Get, "/_matrix/client/v3/rooms/{}/messages", Route::Messages),
    (Get, "/_matrix/client/v3/rooms/{}/event/{}", Route::GetEvent),
    (Get, "/_matrix/client/v3/rooms/{}/context/{}", Route::Context),
    (Get, "/_matrix/client/v3/rooms/{}/state", Route::State),
    (Get, "/_matrix/client/v3/rooms/{}/state/{}", Route::GetStateEventEmptyKey),
    (Get, "/_matrix/client/v3/rooms/{}/state/{}/{}", Route::GetStateEvent),
    (Put, "/_matrix/client/v3/rooms/{}/state/{}", Route::PutStateEventEmptyKey),
    (Put, "/_matrix/client/v3/rooms/{}/state/{}/{}", Route::PutStateEvent),
    (Get, "/_matrix/client/v3/rooms/{}/members", Route::Members),
    (Get, "/_matrix/client/v3/rooms/{}/joined_members", Route::JoinedMembers),
    (Put, "/_matrix/client/v3/directory/room/{}", Route::SetAlias),
    (Get, "/_matrix/client/v3/directory/room/{}", Route::GetAlias),
    (Delete, "/_matrix/client/v3/directory/room/{}", Route::DeleteAlias),
    (Get, "/_matrix/client/v3/rooms/{}/aliases", Route::RoomAliases),
    (Get, "/_matrix/client/v3/directory/list/room/{}", Route::GetDirectoryVisibility),
    (Put, "/_matrix/client/v3/directory/list/room/{}", Route::SetDirectoryVisibility),
    (Get, "/_matrix/client/v3/publicRooms", Route::PublicRoomsGet),
    (Post, "/_matrix/client/v3/publicRooms", Route::PublicRoomsPost),
    (Get, "/_matrix/client/v1/rooms/{}/relations/{}", Route::Relations),
    (Get, "/_matrix/client/v1/rooms/{}/relations/{}/{}", Route::RelationsType),
    (Get, "/_matrix/client/v1/rooms/{}/relations/{}/{}/{}", Route::RelationsTypeEvent),
    (Get, "/_matrix/client/v1/rooms/{}/threads", Route::Threads),
    (Post, "/_matrix/client/v3/rooms/{}/upgrade", Route::Upgrade),
    (Get, "/_matrix/client/v1/rooms/{}/timestamp_to_event", Route::TimestampToEvent),
    (Get, "/_matrix/client/v1/room_summary/{}", Route::RoomSummary),
    (Get, "/_matrix/client/unstable/im.nheko.summary/summary/{}", Route::RoomSummaryUnstable),
    (Get, "/_matrix/client/unstable/im.nheko.summary/rooms/{}/summary", Route::RoomSummaryUnstable),
    (Get, "/_matrix/client/v1/rooms/{}/hierarchy", Route::SpaceHierarchy),
    (Get, "/_matrix/client/v1/mutual_rooms", Route::MutualRooms),
    (Post, "/_matrix/client/v3/rooms/{}/report/{}", Route::ReportEvent),
    (Post, "/_matrix/client/v3/rooms/{}/report", Route::ReportRoom),
    (Post, "/_matrix/client/v3/users/{}/report", Route::ReportUser),
    (Post, "/_matrix/client/v3/user_directory/search", Route::UserDirectorySearch),
    (Get, "/_matrix/client/v3/sync", Route::Sync),
    (Post, "/_matrix/client/v3/user/{}/filter", Route::CreateFilter),
    (Get, "/_matrix/client/v3/user/{}/filter/{}", Route::GetFilter),
    (Get, "/_matrix/client/v3/user/{}/account_data/{}", Route::GetAccountData),
    (Put, "/_matrix/client/v3/user/{}/account_data/{}", Route::PutAccountData),
    (Get, "/_matrix/client/v3/user/{}/rooms/{}/account_data/{}", Route::GetRoomAccountData),
    (Put, "/_matrix/client/v3/user/{}/rooms/{}/account_data/{}", Route::PutRoomAccountData),
    (Get, "/_matrix/client/v3/user/{}/rooms/{}/tags", Route::GetTags),
    (Put, "/_matrix/client/v3/user/{}/rooms/{}/tags/{}", Route::PutTag),
    (Delete, "/_matrix/client/v3/user/{}/rooms/{}/tags/{}", Route::DeleteTag),
    (Put, "/_matrix/client/v3/rooms/{}/typing/{}", Route::Typing),
    (Post, "/_matrix/client/v3/rooms/{}/receipt/{}/{}", Route::Receipt),
    (Post, "/_matrix/client/v3/rooms/{}/read_markers", Route::ReadMarkers),
    (Get, "/_matrix/client/v3/presence/{}/status", Route::GetPresence),
    (Put, "/_matrix/client/v3/presence/{}/status", Route::SetPresence),
    (Get, "/_matrix/client/v3/pushrules", Route::PushRules),
    (Get, "/_matrix/client/v3/pushrules/{}", Route::PushRulesGlobal),
    (Get, "/_matrix/client/v3/pushrules/{}/{}/{}", Route::GetPushRule),
    (Put, "/_matrix/client/v3/pushrules/{}/{}/{}", Route::PutPushRule),
    (Delete, "/_matrix/client/v3/pushrules/{}/{}/{}", Route::DeletePushRule),
    (Get, "/_matrix/client/v3/pushrules/{}/{}/{}/{}", Route::GetPushRuleAttr),
    (Put, "/_matrix/client/v3/pushrules/{}/{}/{}/{}", Route::PutPushRuleAttr),
    (Get, "/_matrix/client/v3/notifications", Route::Notifications),
    (Get, "/_matrix/client/v3/pushers", Route::Pushers),
    (Post, "/_matrix/client/v3/pushers/set", Route::SetPusher),
    (Put, "/_matrix/client/v3/sendToDevice/{}/{}", Route::SendToDevice),
    // End-to-end encryption.
    (Post, "/_matrix/client/v3/keys/upload", Route::KeysUpload),
    (Post, "/_matrix/client/v3/keys/query", Route::KeysQuery),
    (Post, "/_matrix/client/v3/keys/claim", Route::KeysClaim),
    (Get, "/_matrix/client/v3/keys/changes", Route::KeysChanges),
    (Post, "/_matrix/client/v3/keys/device_signing/upload", Route::SigningKeysUpload),
    (Post, "/_matrix/client/unstable/keys/device_signing/upload", Route::SigningKeysUpload),
    (Post, "/_matrix/client/v3/keys/signatures/upload", Route::SignaturesUpload),
    (Post, "/_matrix/client/unstable/keys/signatures/upload", Route::SignaturesUpload),
    (Get, "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device", Route::DehydratedDevice),
    (Put, "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device", Route::PutDehydratedDevice),
    (Delete, "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device", Route::DeleteDehydratedDevice),
    (Get, "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{}/events", Route::DehydratedEvents),
    (Post, "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{}/events", Route::DehydratedEvents),
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
    // Server-side key backups.
    (Post, "/_matrix/client/v3/room_keys/version", Route::RoomKeysVersionCreate),
    (Get, "/_matrix/client/v3/room_keys/version", Route::RoomKeysVersionCurrent),
    (Get, "/_matrix/client/v3/room_keys/version/{}", Route::RoomKeysVersionGet),
    (Put, "/_matrix/client/v3/room_keys/version/{}", Route::RoomKeysVersionPut),
    (Delete, "/_matrix/client/v3/room_keys/version/{}", Route::RoomKeysVersionDelete),
    (Put, "/_matrix/client/v3/room_keys/keys", Route::RoomKeysPut),
    (Get, "/_matrix/client/v3/room_keys/keys", Route::RoomKeysGet),
    (Delete, "/_matrix/client/v3/room_keys/keys", Route::RoomKeysDelete),
    (Put, "/_matrix/client/v3/room_keys/keys/{}", Route::RoomKeysRoomPut),
    (Get, "/_matrix/client/v3/room_keys/keys/{}", Route::RoomKeysRoomGet),
    (Delete, "/_matrix/client/v3/room_keys/keys/{}", Route::RoomKeysRoomDelete),
    (Put, "/_matrix/client/v3/room_keys/keys/{}/{}", Route::RoomKeysSessionPut),
    (Get, "/_matrix/client/v3/room_keys/keys/{}/{}", Route::RoomKeysSessionGet),
    (Delete, "/_matrix/client/v3/room_keys/keys/{}/{}", Route::RoomKeysSessionDelete),
    // What Element asks for at start-up.
    (Get, "/_matrix/client/v3/thirdparty/protocols", Route::ThirdPartyProtocols),
    (Get, "/_matrix/client/v3/account/3pid", Route::ThreePids),
    (Get, "/_matrix/client/v3/voip/turnServer", Route::TurnServer),
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
    if let Some(rest) = p.strip_prefix("/_matrix/client/r0/") {
        return format!("/_matrix/client/v3/{rest}");
    }
    match p.strip_prefix("/_matrix/media/r0/") {
        Some(rest) => format!("/_matrix/media/v3/{rest}"),
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

/// Whether the route's request body is streamed to the handler instead of read into memory
/// first (media uploads: the size limit is enforced on the bytes as they arrive).
pub fn streams_body(method: Method, path: &str) -> bool {
    matches!(resolve(method, path), Ok((Route::MediaUpload | Route::MediaUploadTo, _)))
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
        assert_eq!(resolve(Get, "/_matrix/client/v3/pushrules/").unwrap().0, Route::PushRules);
        assert_eq!(resolve(Get, "/_matrix/client/v3/pushrules/global/").unwrap().0, Route::PushRulesGlobal);
        assert_eq!(resolve(Put, "/_matrix/client/v3/pushrules/global/room/%21r%3Ax/enabled").unwrap().0, Route::PutPushRuleAttr);
    }

    #[test]
    fn profile_field_space_and_mutual_rooms_routes() {
        let (r, p) = resolve(Delete, "/_matrix/client/v3/profile/%40a%3Ax/m.tz").unwrap();
        assert_eq!((r, p), (Route::DeleteProfileField, vec!["@a:x".to_string(), "m.tz".to_string()]));
        assert_eq!(resolve(Put, "/_matrix/client/v3/profile/%40a%3Ax/com.example.pronouns").unwrap().0, Route::SetProfileField);
        assert_eq!(resolve(Delete, "/_matrix/client/v3/profile/%40a%3Ax").unwrap_err().to_response().0, 405);
        let (r, p) = resolve(Get, "/_matrix/client/v1/rooms/%21space%3Ax/hierarchy").unwrap();
        assert_eq!((r, p), (Route::SpaceHierarchy, vec!["!space:x".to_string()]));
        assert_eq!(resolve(Post, "/_matrix/client/v1/rooms/%21s%3Ax/hierarchy").unwrap_err().to_response().0, 405);
        assert_eq!(resolve(Get, "/_matrix/client/v1/mutual_rooms").unwrap().0, Route::MutualRooms);
        assert_eq!(resolve(Post, "/_matrix/client/v1/mutual_rooms").unwrap_err().to_response().0, 405);
    }

    #[test]
    fn media_routes() {
        let (r, p) = resolve(Get, "/_matrix/client/v1/media/download/example.org/abc/my%20file.txt").unwrap();
        assert_eq!((r, p.len()), (Route::MediaDownload, 3));
        assert_eq!(p[2], "my file.txt");
        assert_eq!(resolve(Get, "/_matrix/media/r0/download/a/b").unwrap().0, Route::LegacyMediaDownload);
        assert!(streams_body(Post, "/_matrix/media/v3/upload"));
        assert!(streams_body(Put, "/_matrix/media/v3/upload/a/b"));
        assert!(!streams_body(Post, "/_matrix/media/v1/create"));
        assert!(!streams_body(Get, "/_matrix/media/v3/upload"));
        assert_eq!(resolve(Get, "/_matrix/media/v3/upload").unwrap_err().to_response().0, 405);
    }

    #[test]
    fn key_backup_routes() {
        let (r, p) = resolve(Put, "/_matrix/client/v3/room_keys/keys/%21room%3Ax/sess%2Fion").unwrap();
        assert_eq!((r, p), (Route::RoomKeysSessionPut, vec!["!room:x".to_string(), "sess/ion".to_string()]));
        assert_eq!(resolve(Get, "/_matrix/client/r0/room_keys/version").unwrap().0, Route::RoomKeysVersionCurrent);
        assert_eq!(resolve(Delete, "/_matrix/client/v3/room_keys/keys").unwrap().0, Route::RoomKeysDelete);
        assert_eq!(resolve(Post, "/_matrix/client/v3/room_keys/version/1").unwrap_err().to_response().0, 405);
    }
}
