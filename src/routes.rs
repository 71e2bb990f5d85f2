//! Every endpoint, declared once: method, path with named parameters, the kind of
//! authentication the router enforces before the handler runs (`None`, `User`, `Admin`,
//! `Server`: another homeserver's signed request, the handler gets the origin) with
//! optional flags (`legacy_login`: off when `AUTH_MODE=oauth`; `streams_body`: the body is
//! streamed, not read first; `confirms_token`: the handler accepts an access token from the
//! isolate's cache and confirms it inside its own first D1 batch, or calls
//! `api::auth::ensure_confirmed` before anything else, so revocation still acts at once), and the handler with the path parameters it takes by name
//! (`?name`: only some rows of that handler have the segment; a literal is passed as is).
//!
//! Handlers take `(ctx, req, [caller,] params...)`; a `User`/`Admin` row passes the caller
//! as `&Authed`. See `docs/ARCHITECTURE.md` ("Adding an endpoint").

use crate::http::Method;
use crate::router::{Auth, Endpoint};

/// Whether `flags` (the row's flag names) contain `want`, at compile time.
const fn has_flag(flags: &[&str], want: &str) -> bool {
    let mut rest = flags;
    while let [flag, tail @ ..] = rest {
        if bytes_eq(flag.as_bytes(), want.as_bytes()) {
            return true;
        }
        rest = tail;
    }
    false
}

/// Byte-string equality usable in a `const fn` (slice patterns, no indexing).
const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let (mut a, mut b) = (a, b);
    loop {
        match (a, b) {
            ([], []) => return true,
            ([x, a_tail @ ..], [y, b_tail @ ..]) if *x == *y => {
                a = a_tail;
                b = b_tail;
            }
            _ => return false,
        }
    }
}

/// Builds [`ENDPOINTS`] from the declarations below (see the module documentation).
macro_rules! routes {
    ( $( $(#[$doc:meta])* $method:ident $path:literal [$auth:ident $(, $flag:ident)*] => $($seg:ident)::+ ( $($arg:tt)* ); )* ) => {
        /// The route table, in match order.
        pub static ENDPOINTS: &[Endpoint] = &[ $(
            Endpoint {
                method: Method::$method,
                path: $path,
                auth: Auth::$auth,
                args: routes!(@names [] $($arg)*),
                legacy_login: has_flag(&[$(stringify!($flag)),*], "legacy_login"),
                streams_body: has_flag(&[$(stringify!($flag)),*], "streams_body"),
                confirms_token: has_flag(&[$(stringify!($flag)),*], "confirms_token"),
                #[cfg(target_arch = "wasm32")]
                handler: |ctx, req, who, p| {
                    Box::pin(async move { routes!(@call $auth, ctx, req, who, p, crate::api::$($seg)::+, [] $($arg)*) })
                },
            },
        )* ];
    };

    // The parameter names a row passes, for the consistency tests.
    (@names [$($acc:expr),*]) => { &[$($acc),*] };
    (@names [$($acc:expr),*] ? $name:ident $(, $($rest:tt)*)?) => { routes!(@names [$($acc,)* concat!("?", stringify!($name))] $($($rest)*)?) };
    (@names [$($acc:expr),*] $name:ident $(, $($rest:tt)*)?) => { routes!(@names [$($acc,)* stringify!($name)] $($($rest)*)?) };
    (@names [$($acc:expr),*] $lit:literal $(, $($rest:tt)*)?) => { routes!(@names [$($acc),*] $($($rest)*)?) };

    // The handler call: its arguments are collected, then the caller is passed by auth kind.
    (@call None, $ctx:ident, $req:ident, $who:ident, $p:ident, $f:path, [$($done:expr),*]) => {{
        let _ = ($who, $p);
        $f($ctx, $req $(, $done)*).await
    }};
    (@call Server, $ctx:ident, $req:ident, $who:ident, $p:ident, $f:path, [$($done:expr),*]) => {{
        let _ = $p;
        $f($ctx, $req, $who.server()? $(, $done)*).await
    }};
    (@call $auth:ident, $ctx:ident, $req:ident, $who:ident, $p:ident, $f:path, [$($done:expr),*]) => {{
        let _ = $p;
        $f($ctx, $req, $who.user()? $(, $done)*).await
    }};
    (@call $auth:ident, $ctx:ident, $req:ident, $who:ident, $p:ident, $f:path, [$($done:expr),*] ? $name:ident $(, $($rest:tt)*)?) => {
        routes!(@call $auth, $ctx, $req, $who, $p, $f, [$($done,)* $p.opt(stringify!($name))] $($($rest)*)?)
    };
    (@call $auth:ident, $ctx:ident, $req:ident, $who:ident, $p:ident, $f:path, [$($done:expr),*] $name:ident $(, $($rest:tt)*)?) => {
        routes!(@call $auth, $ctx, $req, $who, $p, $f, [$($done,)* $p.get(stringify!($name))?] $($($rest)*)?)
    };
    (@call $auth:ident, $ctx:ident, $req:ident, $who:ident, $p:ident, $f:path, [$($done:expr),*] $lit:literal $(, $($rest:tt)*)?) => {
        routes!(@call $auth, $ctx, $req, $who, $p, $f, [$($done,)* $lit] $($($rest)*)?)
    };
}

routes! {
    Get "/_matrix/client/versions" [None] => client::discovery::versions_route();
    Get "/.well-known/matrix/client" [None] => client::discovery::well_known_client_route();
    Get "/.well-known/matrix/server" [None] => client::discovery::well_known_server_route();
    Get "/_matrix/client/v3/capabilities" [User] => client::discovery::capabilities_route();
    Get "/_matrix/key/v2/server" [None] => federation::key::server_keys_route(?keyId);
    Get "/_matrix/key/v2/server/{keyId}" [None] => federation::key::server_keys_route(?keyId);
    Post "/_matrix/key/v2/query" [None] => federation::key::query_keys_route();
    Get "/_matrix/key/v2/query/{serverName}" [None] => federation::key::query_server_keys_route(serverName);
    Get "/_matrix/federation/v1/version" [None] => federation::version::version_route();
    Post "/_matrix/client/v3/register" [None, legacy_login] => client::register::register_route();
    Get "/_matrix/client/v3/register/available" [None] => client::register::available_route();
    Get "/_matrix/client/v1/register/m.login.registration_token/validity" [None] => client::register::token_validity_route();
    Get "/_matrix/client/v3/login" [None] => client::login::login_flows_route();
    Post "/_matrix/client/v3/login" [None, legacy_login] => client::login::login_route();
    Post "/_matrix/client/v1/login/get_token" [User, legacy_login] => client::login::get_login_token_route();
    Post "/_matrix/client/v3/logout" [User] => client::login::logout_route();
    Post "/_matrix/client/v3/logout/all" [User] => client::login::logout_all_route();
    Get "/_matrix/client/v3/account/whoami" [User] => client::account::whoami_route();
    Post "/_matrix/client/v3/account/password" [User] => client::account::change_password_route();
    Post "/_matrix/client/v3/account/deactivate" [User] => client::account::deactivate_route();
    Post "/_matrix/client/v3/refresh" [None, legacy_login] => client::login::refresh_route();
    Get "/_matrix/client/v3/devices" [User] => client::devices::devices_route();
    Get "/_matrix/client/v3/devices/{deviceId}" [User] => client::devices::get_device_route(deviceId);
    Put "/_matrix/client/v3/devices/{deviceId}" [User] => client::devices::update_device_route(deviceId);
    Delete "/_matrix/client/v3/devices/{deviceId}" [User] => client::devices::delete_device_route(deviceId);
    Post "/_matrix/client/v3/delete_devices" [User] => client::devices::delete_devices_route();
    Get "/_matrix/client/v3/profile/{userId}" [None] => client::profile::profile_route(userId);
    Get "/_matrix/client/v3/profile/{userId}/{keyName}" [None] => client::profile::get_field_route(userId, keyName);
    Put "/_matrix/client/v3/profile/{userId}/{keyName}" [User] => client::profile::set_field_route(userId, keyName);
    Delete "/_matrix/client/v3/profile/{userId}/{keyName}" [User] => client::profile::delete_field_route(userId, keyName);
    // Media (spec: "Content repository"). Upload and create stay under /_matrix/media.
    Post "/_matrix/media/v3/upload" [User, streams_body, confirms_token] => media::upload::upload_route();
    Put "/_matrix/media/v3/upload/{serverName}/{mediaId}" [User, streams_body] => media::upload::upload_to_route(serverName, mediaId);
    Post "/_matrix/media/v1/create" [User] => media::upload::create_route();
    Get "/_matrix/client/v1/media/config" [User] => media::upload::config_route();
    Get "/_matrix/client/v1/media/download/{serverName}/{mediaId}" [User] => media::download::download_route(serverName, mediaId, ?fileName);
    Get "/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}" [User] => media::download::download_route(serverName, mediaId, ?fileName);
    Get "/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}" [User] => media::thumbnail::thumbnail_route(serverName, mediaId);
    Get "/_matrix/client/v1/media/preview_url" [User] => media::preview::preview_url_route();
    // The deprecated /_matrix/media/v3 forms: download and thumbnail are unauthenticated
    // (frozen by default); config and preview_url always required a token.
    Get "/_matrix/media/v3/config" [User] => media::upload::config_route();
    Get "/_matrix/media/v3/preview_url" [User] => media::preview::preview_url_route();
    Get "/_matrix/media/v3/download/{serverName}/{mediaId}" [None] => media::download::legacy_download_route(serverName, mediaId, ?fileName);
    Get "/_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}" [None] => media::download::legacy_download_route(serverName, mediaId, ?fileName);
    Get "/_matrix/media/v3/thumbnail/{serverName}/{mediaId}" [None] => media::thumbnail::legacy_thumbnail_route(serverName, mediaId);
    Post "/_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}" [Admin] => media::admin::quarantine_route(serverName, mediaId);
    Get "/_synapse/admin/v1/register" [None] => admin::register::nonce_route();
    Post "/_synapse/admin/v1/register" [None] => admin::register::register_route();
    // The admin API (issue 18; Synapse's docs/admin_api): server admins only.
    Get "/_synapse/admin/v1/server_version" [Admin] => admin::server::server_version_route();
    Get "/_synapse/admin/v2/users" [Admin] => admin::users::list_users_route();
    Get "/_synapse/admin/v2/users/{userId}" [Admin] => admin::users::get_user_route(userId);
    Put "/_synapse/admin/v2/users/{userId}" [Admin] => admin::users::put_user_route(userId);
    Post "/_synapse/admin/v1/deactivate/{userId}" [Admin] => admin::users::deactivate_route(userId);
    Post "/_synapse/admin/v1/reset_password/{userId}" [Admin] => admin::users::reset_password_route(userId);
    Get "/_synapse/admin/v1/users/{userId}/joined_rooms" [Admin] => admin::users::joined_rooms_route(userId);
    Get "/_synapse/admin/v2/users/{userId}/devices" [Admin] => admin::users::devices_route(userId);
    Get "/_synapse/admin/v1/whois/{userId}" [Admin] => admin::users::whois_route(userId);
    Post "/_synapse/admin/v1/users/{userId}/shadow_ban" [Admin] => admin::users::shadow_ban_route(userId);
    Delete "/_synapse/admin/v1/users/{userId}/shadow_ban" [Admin] => admin::users::shadow_ban_route(userId);
    Get "/_synapse/admin/v1/users/{userId}/media" [Admin] => admin::media::user_media_route(userId);
    Delete "/_synapse/admin/v1/users/{userId}/media" [Admin] => admin::media::delete_user_media_route(userId);
    Delete "/_synapse/admin/v1/media/{serverName}/{mediaId}" [Admin] => admin::media::delete_media_route(serverName, mediaId);
    Get "/_synapse/admin/v1/rooms" [Admin] => admin::rooms::list_rooms_route();
    Get "/_synapse/admin/v1/rooms/{roomId}" [Admin] => admin::rooms::room_route(roomId);
    Delete "/_synapse/admin/v1/rooms/{roomId}" [Admin] => admin::rooms::delete_room_v1_route(roomId);
    Get "/_synapse/admin/v1/rooms/{roomId}/members" [Admin] => admin::rooms::members_route(roomId);
    Get "/_synapse/admin/v1/rooms/{roomId}/state" [Admin] => admin::rooms::state_route(roomId);
    Delete "/_synapse/admin/v2/rooms/{roomId}" [Admin] => admin::rooms::delete_room_route(roomId);
    Get "/_synapse/admin/v2/rooms/{roomId}/delete_status" [Admin] => admin::rooms::delete_status_by_room_route(roomId);
    Get "/_synapse/admin/v2/rooms/delete_status/{deleteId}" [Admin] => admin::rooms::delete_status_route(deleteId);
    Post "/_synapse/admin/v1/room/{roomId}/media/quarantine" [Admin] => admin::rooms::quarantine_room_media_route(roomId);
    Get "/_synapse/admin/v1/registration_tokens" [Admin] => admin::tokens::list_tokens_route();
    Post "/_synapse/admin/v1/registration_tokens/new" [Admin] => admin::tokens::create_token_route();
    Get "/_synapse/admin/v1/registration_tokens/{token}" [Admin] => admin::tokens::get_token_route(token);
    Put "/_synapse/admin/v1/registration_tokens/{token}" [Admin] => admin::tokens::update_token_route(token);
    Delete "/_synapse/admin/v1/registration_tokens/{token}" [Admin] => admin::tokens::delete_token_route(token);
    Get "/_synapse/admin/v1/event_reports" [Admin] => admin::reports::list_reports_route();
    Get "/_synapse/admin/v1/event_reports/{reportId}" [Admin] => admin::reports::report_route(reportId);
    Delete "/_synapse/admin/v1/event_reports/{reportId}" [Admin] => admin::reports::delete_report_route(reportId);
    Post "/_synapse/admin/v1/send_server_notice" [Admin] => admin::notices::send_notice_route();
    Get "/_stratus/health" [None] => health::health_route();
    Get "/_stratus/admin/v1/provenance" [Admin] => admin::provenance::provenance_route();
    Post "/_matrix/client/v3/createRoom" [User] => client::rooms::create_room_route();
    Get "/_matrix/client/v3/joined_rooms" [User] => client::rooms::joined_rooms_route();
    Post "/_matrix/client/v3/join/{roomIdOrAlias}" [User] => client::membership::join_by_id_or_alias_route(roomIdOrAlias);
    Post "/_matrix/client/v3/knock/{roomIdOrAlias}" [User] => client::membership::knock_route(roomIdOrAlias);
    Post "/_matrix/client/v3/rooms/{roomId}/join" [User] => client::membership::join_route(roomId);
    Post "/_matrix/client/v3/rooms/{roomId}/invite" [User] => client::membership::invite_route(roomId);
    Post "/_matrix/client/v3/rooms/{roomId}/leave" [User] => client::membership::leave_route(roomId);
    Post "/_matrix/client/v3/rooms/{roomId}/forget" [User] => client::membership::forget_route(roomId);
    Post "/_matrix/client/v3/rooms/{roomId}/kick" [User] => client::membership::kick_route(roomId);
    Post "/_matrix/client/v3/rooms/{roomId}/ban" [User] => client::membership::ban_route(roomId);
    Post "/_matrix/client/v3/rooms/{roomId}/unban" [User] => client::membership::unban_route(roomId);
    Put "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}" [User, confirms_token] => client::message::send_route(roomId, eventType, txnId);
    Put "/_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}" [User] => client::message::redact_route(roomId, eventId, txnId);
    Get "/_matrix/client/v3/rooms/{roomId}/messages" [User, confirms_token] => client::message::messages_route(roomId);
    Get "/_matrix/client/v3/rooms/{roomId}/event/{eventId}" [User] => client::message::get_event_route(roomId, eventId);
    Get "/_matrix/client/v3/rooms/{roomId}/context/{eventId}" [User] => client::message::context_route(roomId, eventId);
    Get "/_matrix/client/v3/rooms/{roomId}/state" [User] => client::state::get_state_route(roomId);
    Get "/_matrix/client/v3/rooms/{roomId}/state/{eventType}" [User] => client::state::get_state_event_route(roomId, eventType, "");
    Get "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}" [User] => client::state::get_state_event_route(roomId, eventType, stateKey);
    Put "/_matrix/client/v3/rooms/{roomId}/state/{eventType}" [User] => client::state::put_state_route(roomId, eventType, "");
    Put "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}" [User] => client::state::put_state_route(roomId, eventType, stateKey);
    Get "/_matrix/client/v3/rooms/{roomId}/members" [User] => client::state::members_route(roomId);
    Get "/_matrix/client/v3/rooms/{roomId}/joined_members" [User] => client::state::joined_members_route(roomId);
    Put "/_matrix/client/v3/directory/room/{roomAlias}" [User] => client::directory::set_alias_route(roomAlias);
    Get "/_matrix/client/v3/directory/room/{roomAlias}" [None] => client::directory::get_alias_route(roomAlias);
    Delete "/_matrix/client/v3/directory/room/{roomAlias}" [User] => client::directory::delete_alias_route(roomAlias);
    Get "/_matrix/client/v3/rooms/{roomId}/aliases" [User] => client::directory::room_aliases_route(roomId);
    Get "/_matrix/client/v3/directory/list/room/{roomId}" [None] => client::directory::get_visibility_route(roomId);
    Put "/_matrix/client/v3/directory/list/room/{roomId}" [User] => client::directory::set_visibility_route(roomId);
    Get "/_matrix/client/v3/publicRooms" [None] => client::directory::public_rooms_get_route();
    Post "/_matrix/client/v3/publicRooms" [User] => client::directory::public_rooms_post_route();
    Get "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}" [User] => client::relations::relations_route(roomId, eventId, ?relType, ?eventType);
    Get "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}" [User] => client::relations::relations_route(roomId, eventId, ?relType, ?eventType);
    Get "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}" [User] => client::relations::relations_route(roomId, eventId, ?relType, ?eventType);
    Get "/_matrix/client/v1/rooms/{roomId}/threads" [User] => client::relations::threads_route(roomId);
    Post "/_matrix/client/v3/rooms/{roomId}/upgrade" [User] => client::upgrade::upgrade_route(roomId);
    Get "/_matrix/client/v1/rooms/{roomId}/timestamp_to_event" [User] => client::room_info::timestamp_to_event_route(roomId);
    Get "/_matrix/client/v1/room_summary/{roomIdOrAlias}" [None] => client::room_info::room_summary_route(roomIdOrAlias);
    Get "/_matrix/client/unstable/im.nheko.summary/summary/{roomIdOrAlias}" [None] => client::room_info::room_summary_route(roomIdOrAlias);
    Get "/_matrix/client/unstable/im.nheko.summary/rooms/{roomIdOrAlias}/summary" [None] => client::room_info::room_summary_route(roomIdOrAlias);
    Get "/_matrix/client/v1/rooms/{roomId}/hierarchy" [User] => client::spaces::hierarchy_route(roomId);
    Get "/_matrix/client/v1/mutual_rooms" [User] => client::spaces::mutual_rooms_route();
    Post "/_matrix/client/v3/rooms/{roomId}/report/{eventId}" [User] => client::room_info::report_event_route(roomId, eventId);
    Post "/_matrix/client/v3/rooms/{roomId}/report" [User] => client::room_info::report_room_route(roomId);
    Post "/_matrix/client/v3/users/{userId}/report" [User] => client::room_info::report_user_route(userId);
    Post "/_matrix/client/v3/user_directory/search" [User] => client::room_info::user_directory_search_route();
    Get "/_matrix/client/v3/sync" [User, confirms_token] => client::sync::sync_route();
    Post "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync" [User] => client::sliding::sliding_sync_route();
    Post "/_matrix/client/v3/user/{userId}/filter" [User] => client::sync::create_filter_route(userId);
    Get "/_matrix/client/v3/user/{userId}/filter/{filterId}" [User] => client::sync::get_filter_route(userId, filterId);
    Get "/_matrix/client/v3/user/{userId}/account_data/{type}" [User] => client::account_data::get_global_route(userId, type);
    Put "/_matrix/client/v3/user/{userId}/account_data/{type}" [User] => client::account_data::put_global_route(userId, type);
    Get "/_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}" [User] => client::account_data::get_room_route(userId, roomId, type);
    Put "/_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}" [User] => client::account_data::put_room_route(userId, roomId, type);
    Get "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags" [User] => client::account_data::get_tags_route(userId, roomId);
    Put "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}" [User] => client::account_data::put_tag_route(userId, roomId, tag);
    Delete "/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}" [User] => client::account_data::delete_tag_route(userId, roomId, tag);
    Put "/_matrix/client/v3/rooms/{roomId}/typing/{userId}" [User] => client::typing::typing_route(roomId, userId);
    Post "/_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}" [User] => client::receipts::receipt_route(roomId, receiptType, eventId);
    Post "/_matrix/client/v3/rooms/{roomId}/read_markers" [User] => client::receipts::read_markers_route(roomId);
    Get "/_matrix/client/v3/presence/{userId}/status" [User] => client::presence::get_presence_route(userId);
    Put "/_matrix/client/v3/presence/{userId}/status" [User] => client::presence::set_presence_route(userId);
    Get "/_matrix/client/v3/pushrules" [User] => client::push::get_all_route();
    Get "/_matrix/client/v3/pushrules/{scope}" [User] => client::push::get_global_route(scope);
    Get "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}" [User] => client::push::get_rule_route(scope, kind, ruleId);
    Put "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}" [User] => client::push::put_rule_route(scope, kind, ruleId);
    Delete "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}" [User] => client::push::delete_rule_route(scope, kind, ruleId);
    Get "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/{attr}" [User] => client::push::get_attr_route(scope, kind, ruleId, attr);
    Put "/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/{attr}" [User] => client::push::put_attr_route(scope, kind, ruleId, attr);
    Get "/_matrix/client/v3/notifications" [User] => client::push::notifications_route();
    Get "/_matrix/client/v3/pushers" [User] => client::push::pushers_route();
    Post "/_matrix/client/v3/pushers/set" [User] => client::push::set_pusher_route();
    Put "/_matrix/client/v3/sendToDevice/{eventType}/{txnId}" [User] => client::to_device::send_to_device_route(eventType, txnId);
    // End-to-end encryption.
    Post "/_matrix/client/v3/keys/upload" [User] => client::keys::upload_keys_route();
    Post "/_matrix/client/v3/keys/query" [User] => client::keys::query_keys_route();
    Post "/_matrix/client/v3/keys/claim" [User] => client::keys::claim_keys_route();
    Get "/_matrix/client/v3/keys/changes" [User] => client::keys::key_changes_route();
    Post "/_matrix/client/v3/keys/device_signing/upload" [User] => client::cross_signing::upload_signing_keys_route();
    Post "/_matrix/client/unstable/keys/device_signing/upload" [User] => client::cross_signing::upload_signing_keys_route();
    Post "/_matrix/client/v3/keys/signatures/upload" [User] => client::cross_signing::upload_signatures_route();
    Post "/_matrix/client/unstable/keys/signatures/upload" [User] => client::cross_signing::upload_signatures_route();
    Get "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device" [User] => client::dehydrated::get_dehydrated_device_route();
    Put "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device" [User] => client::dehydrated::put_dehydrated_device_route();
    Delete "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device" [User] => client::dehydrated::delete_dehydrated_device_route();
    Get "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{deviceId}/events" [User] => client::dehydrated::dehydrated_events_route(deviceId);
    Post "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{deviceId}/events" [User] => client::dehydrated::dehydrated_events_route(deviceId);
    // OAuth 2.0 / OIDC provider (MSC3861).
    Get "/_matrix/client/v1/auth_metadata" [None] => oauth::metadata::auth_metadata_route();
    Get "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata" [None] => oauth::metadata::auth_metadata_route();
    Get "/.well-known/openid-configuration" [None] => oauth::metadata::openid_configuration_route();
    Get "/.well-known/jwks.json" [None] => oauth::metadata::jwks_route();
    Post "/oauth/register" [None] => oauth::register::register_route();
    Get "/oauth/authorize" [None] => oauth::authorize::authorize_route();
    Post "/oauth/authorize" [None] => oauth::authorize::authorize_post_route();
    Post "/oauth/token" [None] => oauth::token::token_route();
    Post "/oauth/revoke" [None] => oauth::token::revoke_route();
    Get "/oauth/userinfo" [None] => oauth::token::userinfo_route();
    Post "/oauth/userinfo" [None] => oauth::token::userinfo_route();
    Get "/account" [None] => oauth::account::account_route();
    Post "/account" [None] => oauth::account::account_post_route();
    // Server-side key backups.
    Post "/_matrix/client/v3/room_keys/version" [User] => client::backup::create_version_route();
    Get "/_matrix/client/v3/room_keys/version" [User] => client::backup::current_version_route();
    Get "/_matrix/client/v3/room_keys/version/{version}" [User] => client::backup::get_version_route(version);
    Put "/_matrix/client/v3/room_keys/version/{version}" [User] => client::backup::update_version_route(version);
    Delete "/_matrix/client/v3/room_keys/version/{version}" [User] => client::backup::delete_version_route(version);
    Put "/_matrix/client/v3/room_keys/keys" [User] => client::backup::put_keys_route();
    Get "/_matrix/client/v3/room_keys/keys" [User] => client::backup::get_keys_route();
    Delete "/_matrix/client/v3/room_keys/keys" [User] => client::backup::delete_keys_route();
    Put "/_matrix/client/v3/room_keys/keys/{roomId}" [User] => client::backup::put_room_keys_route(roomId);
    Get "/_matrix/client/v3/room_keys/keys/{roomId}" [User] => client::backup::get_room_keys_route(roomId);
    Delete "/_matrix/client/v3/room_keys/keys/{roomId}" [User] => client::backup::delete_room_keys_route(roomId);
    Put "/_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}" [User] => client::backup::put_session_key_route(roomId, sessionId);
    Get "/_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}" [User] => client::backup::get_session_key_route(roomId, sessionId);
    Delete "/_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}" [User] => client::backup::delete_session_key_route(roomId, sessionId);
    // What Element asks for at start-up.
    Get "/_matrix/client/v3/thirdparty/protocols" [User] => client::thirdparty::protocols_route();
    Get "/_matrix/client/v3/account/3pid" [User] => client::account::threepids_route();
    Get "/_matrix/client/v3/voip/turnServer" [User] => client::voip::turn_server_route();

    // Federation: transactions and joins (src/api/federation/).
    Put "/_matrix/federation/v1/send/{txnId}" [Server] => federation::send::send_transaction_route(txnId);
    Put "/_matrix/federation/v2/send_join/{roomId}/{eventId}" [Server] => federation::membership::send_join_route(roomId, eventId);
    Put "/_matrix/federation/v2/send_leave/{roomId}/{eventId}" [Server] => federation::membership::send_leave_route(roomId, eventId);
    Put "/_matrix/federation/v1/send_knock/{roomId}/{eventId}" [Server] => federation::membership::send_knock_route(roomId, eventId);

    // Federation: reads, templates, invites.
    Get "/_matrix/federation/v1/event/{eventId}" [Server] => federation::events::event_route(eventId);
    Get "/_matrix/federation/v1/backfill/{roomId}" [Server] => federation::events::backfill_route(roomId);
    Post "/_matrix/federation/v1/get_missing_events/{roomId}" [Server] => federation::events::get_missing_events_route(roomId);
    Get "/_matrix/federation/v1/state/{roomId}" [Server] => federation::state::state_route(roomId);
    Get "/_matrix/federation/v1/state_ids/{roomId}" [Server] => federation::state::state_ids_route(roomId);
    Get "/_matrix/federation/v1/event_auth/{roomId}/{eventId}" [Server] => federation::state::event_auth_route(roomId, eventId);
    Get "/_matrix/federation/v1/query/directory" [Server] => federation::query::directory_route();
    Get "/_matrix/federation/v1/query/profile" [Server] => federation::query::profile_route();
    Get "/_matrix/federation/v1/user/devices/{userId}" [Server] => federation::user::user_devices_route(userId);
    Post "/_matrix/federation/v1/user/keys/query" [Server] => federation::user::user_keys_query_route();
    Post "/_matrix/federation/v1/user/keys/claim" [Server] => federation::user::user_keys_claim_route();
    Get "/_matrix/federation/v1/publicRooms" [Server] => federation::directory::public_rooms_get_route();
    Post "/_matrix/federation/v1/publicRooms" [Server] => federation::directory::public_rooms_post_route();
    Get "/_matrix/federation/v1/make_join/{roomId}/{userId}" [Server] => federation::make::make_join_route(roomId, userId);
    Get "/_matrix/federation/v1/make_knock/{roomId}/{userId}" [Server] => federation::make::make_knock_route(roomId, userId);
    Get "/_matrix/federation/v1/make_leave/{roomId}/{userId}" [Server] => federation::make::make_leave_route(roomId, userId);
    Put "/_matrix/federation/v2/invite/{roomId}/{eventId}" [Server] => federation::invite::invite_route(roomId, eventId);
    Get "/_matrix/federation/v1/media/download/{mediaId}" [Server] => federation::media::download_route(mediaId);
    Get "/_matrix/federation/v1/media/thumbnail/{mediaId}" [Server] => federation::media::thumbnail_route(mediaId);
}
