//! HTTP handlers, one file per API area (the Conduit layout), and the dispatch from a
//! [`Route`](crate::router::Route) to its handler.

pub mod admin;
pub mod auth;
pub mod client;
pub mod federation;
pub mod health;
pub mod media;
pub mod oauth;

use crate::ctx::Ctx;
use crate::http::{Method, Request, Response};
use crate::router::{resolve, Route};

/// Serves one request. Never panics on bad input: every failure is a Matrix error.
pub async fn handle(ctx: &Ctx, req: Request) -> Response {
    if req.method == Method::Options {
        // CORS preflight: the headers are added by the caller.
        return Response::ok(serde_json::json!({}));
    }
    let (route, params) = match resolve(req.method, &req.path) {
        Ok(r) => r,
        Err(e) => return Response::from_error(&e),
    };
    dispatch(ctx, route, &params, &req).await.into()
}

async fn dispatch(ctx: &Ctx, route: Route, p: &[String], req: &Request) -> crate::Result<Response> {
    use client::*;
    // AUTH_MODE=oauth: the legacy login API is off (spec: "Authentication API discovery").
    if !ctx.config.legacy_login() && matches!(route, Route::Login | Route::Register | Route::Refresh | Route::LoginGetToken) {
        return Err(crate::err!(Unrecognized, "This server uses OAuth 2.0 for login: see /_matrix/client/v1/auth_metadata"));
    }
    match route {
        Route::Versions => discovery::versions_route(ctx, req).await,
        Route::WellKnownClient => discovery::well_known_client_route(ctx, req).await,
        Route::WellKnownServer => discovery::well_known_server_route(ctx, req).await,
        Route::Capabilities => discovery::capabilities_route(ctx, req).await,
        Route::KeyServer => federation::key::server_keys_route(ctx, req).await,
        Route::Register => register::register_route(ctx, req).await,
        Route::RegisterAvailable => register::available_route(ctx, req).await,
        Route::RegistrationTokenValidity => register::token_validity_route(ctx, req).await,
        Route::LoginFlows => login::login_flows_route(ctx, req).await,
        Route::Login => login::login_route(ctx, req).await,
        Route::LoginGetToken => login::get_login_token_route(ctx, req).await,
        Route::Logout => login::logout_route(ctx, req).await,
        Route::LogoutAll => login::logout_all_route(ctx, req).await,
        Route::Refresh => login::refresh_route(ctx, req).await,
        Route::Whoami => account::whoami_route(ctx, req).await,
        Route::ChangePassword => account::change_password_route(ctx, req).await,
        Route::Deactivate => account::deactivate_route(ctx, req).await,
        Route::Devices => devices::devices_route(ctx, req).await,
        Route::GetDevice => devices::get_device_route(ctx, req, &p[0]).await,
        Route::UpdateDevice => devices::update_device_route(ctx, req, &p[0]).await,
        Route::DeleteDevice => devices::delete_device_route(ctx, req, &p[0]).await,
        Route::DeleteDevices => devices::delete_devices_route(ctx, req).await,
        Route::Profile => profile::profile_route(ctx, req, &p[0]).await,
        Route::GetProfileField => profile::get_field_route(ctx, req, &p[0], &p[1]).await,
        Route::SetProfileField => profile::set_field_route(ctx, req, &p[0], &p[1]).await,
        Route::DeleteProfileField => profile::delete_field_route(ctx, req, &p[0], &p[1]).await,
        Route::MediaUpload => media::upload::upload_route(ctx, req).await,
        Route::MediaCreate => media::upload::create_route(ctx, req).await,
        Route::MediaUploadTo => media::upload::upload_to_route(ctx, req, &p[0], &p[1]).await,
        Route::MediaConfig => media::upload::config_route(ctx, req).await,
        Route::MediaDownload => media::download::download_route(ctx, req, &p[0], &p[1], p.get(2).map(String::as_str)).await,
        Route::LegacyMediaDownload => media::download::legacy_download_route(ctx, req, &p[0], &p[1], p.get(2).map(String::as_str)).await,
        Route::MediaThumbnail => media::thumbnail::thumbnail_route(ctx, req, &p[0], &p[1]).await,
        Route::LegacyMediaThumbnail => media::thumbnail::legacy_thumbnail_route(ctx, req, &p[0], &p[1]).await,
        Route::MediaPreviewUrl => media::preview::preview_url_route(ctx, req).await,
        Route::AdminQuarantineMedia => media::admin::quarantine_route(ctx, req, &p[0], &p[1]).await,
        Route::AdminRegisterNonce => admin::register::nonce_route(ctx, req).await,
        Route::AdminRegister => admin::register::register_route(ctx, req).await,
        Route::Health => health::health_route(ctx, req).await,
        Route::CreateRoom => rooms::create_room_route(ctx, req).await,
        Route::JoinedRooms => rooms::joined_rooms_route(ctx, req).await,
        Route::JoinByIdOrAlias => membership::join_by_id_or_alias_route(ctx, req, &p[0]).await,
        Route::Knock => membership::knock_route(ctx, req, &p[0]).await,
        Route::Join => membership::join_route(ctx, req, &p[0]).await,
        Route::Invite => membership::invite_route(ctx, req, &p[0]).await,
        Route::Leave => membership::leave_route(ctx, req, &p[0]).await,
        Route::Forget => membership::forget_route(ctx, req, &p[0]).await,
        Route::Kick => membership::kick_route(ctx, req, &p[0]).await,
        Route::Ban => membership::ban_route(ctx, req, &p[0]).await,
        Route::Unban => membership::unban_route(ctx, req, &p[0]).await,
        Route::Send => message::send_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::Redact => message::redact_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::Messages => message::messages_route(ctx, req, &p[0]).await,
        Route::GetEvent => message::get_event_route(ctx, req, &p[0], &p[1]).await,
        Route::Context => message::context_route(ctx, req, &p[0], &p[1]).await,
        Route::State => state::get_state_route(ctx, req, &p[0]).await,
        Route::GetStateEvent => state::get_state_event_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::GetStateEventEmptyKey => state::get_state_event_route(ctx, req, &p[0], &p[1], "").await,
        Route::PutStateEvent => state::put_state_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::PutStateEventEmptyKey => state::put_state_route(ctx, req, &p[0], &p[1], "").await,
        Route::Members => state::members_route(ctx, req, &p[0]).await,
        Route::JoinedMembers => state::joined_members_route(ctx, req, &p[0]).await,
        Route::SetAlias => directory::set_alias_route(ctx, req, &p[0]).await,
        Route::GetAlias => directory::get_alias_route(ctx, req, &p[0]).await,
        Route::DeleteAlias => directory::delete_alias_route(ctx, req, &p[0]).await,
        Route::RoomAliases => directory::room_aliases_route(ctx, req, &p[0]).await,
        Route::GetDirectoryVisibility => directory::get_visibility_route(ctx, req, &p[0]).await,
        Route::SetDirectoryVisibility => directory::set_visibility_route(ctx, req, &p[0]).await,
        Route::PublicRoomsGet => directory::public_rooms_get_route(ctx, req).await,
        Route::PublicRoomsPost => directory::public_rooms_post_route(ctx, req).await,
        Route::Relations => relations::relations_route(ctx, req, &p[0], &p[1], None, None).await,
        Route::RelationsType => relations::relations_route(ctx, req, &p[0], &p[1], Some(&p[2]), None).await,
        Route::RelationsTypeEvent => relations::relations_route(ctx, req, &p[0], &p[1], Some(&p[2]), Some(&p[3])).await,
        Route::Threads => relations::threads_route(ctx, req, &p[0]).await,
        Route::Upgrade => upgrade::upgrade_route(ctx, req, &p[0]).await,
        Route::TimestampToEvent => room_info::timestamp_to_event_route(ctx, req, &p[0]).await,
        Route::RoomSummary | Route::RoomSummaryUnstable => room_info::room_summary_route(ctx, req, &p[0]).await,
        Route::SpaceHierarchy => spaces::hierarchy_route(ctx, req, &p[0]).await,
        Route::MutualRooms => spaces::mutual_rooms_route(ctx, req).await,
        Route::ReportEvent => room_info::report_event_route(ctx, req, &p[0], &p[1]).await,
        Route::ReportRoom => room_info::report_room_route(ctx, req, &p[0]).await,
        Route::ReportUser => room_info::report_user_route(ctx, req, &p[0]).await,
        Route::UserDirectorySearch => room_info::user_directory_search_route(ctx, req).await,
        Route::Sync => sync::sync_route(ctx, req).await,
        Route::CreateFilter => sync::create_filter_route(ctx, req, &p[0]).await,
        Route::GetFilter => sync::get_filter_route(ctx, req, &p[0], &p[1]).await,
        Route::GetAccountData => account_data::get_global_route(ctx, req, &p[0], &p[1]).await,
        Route::PutAccountData => account_data::put_global_route(ctx, req, &p[0], &p[1]).await,
        Route::GetRoomAccountData => account_data::get_room_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::PutRoomAccountData => account_data::put_room_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::GetTags => account_data::get_tags_route(ctx, req, &p[0], &p[1]).await,
        Route::PutTag => account_data::put_tag_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::DeleteTag => account_data::delete_tag_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::Typing => typing::typing_route(ctx, req, &p[0], &p[1]).await,
        Route::Receipt => receipts::receipt_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::ReadMarkers => receipts::read_markers_route(ctx, req, &p[0]).await,
        Route::GetPresence => presence::get_presence_route(ctx, req, &p[0]).await,
        Route::SetPresence => presence::set_presence_route(ctx, req, &p[0]).await,
        Route::PushRules => push::get_all_route(ctx, req).await,
        Route::PushRulesGlobal => {
            if p[0] != "global" {
                return Err(crate::err!(InvalidParam, "Only the global scope exists"));
            }
            push::get_global_route(ctx, req).await
        }
        Route::GetPushRule => push::get_rule_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::PutPushRule => push::put_rule_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::DeletePushRule => push::delete_rule_route(ctx, req, &p[0], &p[1], &p[2]).await,
        Route::GetPushRuleAttr => push::get_attr_route(ctx, req, &p[0], &p[1], &p[2], &p[3]).await,
        Route::PutPushRuleAttr => push::put_attr_route(ctx, req, &p[0], &p[1], &p[2], &p[3]).await,
        Route::Notifications => push::notifications_route(ctx, req).await,
        Route::Pushers => push::pushers_route(ctx, req).await,
        Route::SetPusher => push::set_pusher_route(ctx, req).await,
        Route::SendToDevice => to_device::send_to_device_route(ctx, req, &p[0], &p[1]).await,
        Route::KeysUpload => keys::upload_keys_route(ctx, req).await,
        Route::KeysQuery => keys::query_keys_route(ctx, req).await,
        Route::KeysClaim => keys::claim_keys_route(ctx, req).await,
        Route::KeysChanges => keys::key_changes_route(ctx, req).await,
        Route::SigningKeysUpload => cross_signing::upload_signing_keys_route(ctx, req).await,
        Route::SignaturesUpload => cross_signing::upload_signatures_route(ctx, req).await,
        Route::DehydratedDevice => dehydrated::get_dehydrated_device_route(ctx, req).await,
        Route::PutDehydratedDevice => dehydrated::put_dehydrated_device_route(ctx, req).await,
        Route::DeleteDehydratedDevice => dehydrated::delete_dehydrated_device_route(ctx, req).await,
        Route::DehydratedEvents => dehydrated::dehydrated_events_route(ctx, req, &p[0]).await,
        Route::AuthMetadata => oauth::metadata::auth_metadata_route(ctx, req).await,
        Route::OpenIdConfiguration => oauth::metadata::openid_configuration_route(ctx, req).await,
        Route::Jwks => oauth::metadata::jwks_route(ctx, req).await,
        Route::OAuthRegister => oauth::register::register_route(ctx, req).await,
        Route::OAuthAuthorize => oauth::authorize::authorize_route(ctx, req).await,
        Route::OAuthAuthorizePost => oauth::authorize::authorize_post_route(ctx, req).await,
        Route::OAuthToken => oauth::token::token_route(ctx, req).await,
        Route::OAuthRevoke => oauth::token::revoke_route(ctx, req).await,
        Route::OAuthUserinfo => oauth::token::userinfo_route(ctx, req).await,
        Route::Account => oauth::account::account_route(ctx, req).await,
        Route::AccountPost => oauth::account::account_post_route(ctx, req).await,
        Route::RoomKeysVersionCreate => backup::create_version_route(ctx, req).await,
        Route::RoomKeysVersionCurrent => backup::current_version_route(ctx, req).await,
        Route::RoomKeysVersionGet => backup::get_version_route(ctx, req, &p[0]).await,
        Route::RoomKeysVersionPut => backup::update_version_route(ctx, req, &p[0]).await,
        Route::RoomKeysVersionDelete => backup::delete_version_route(ctx, req, &p[0]).await,
        Route::RoomKeysPut => backup::put_keys_route(ctx, req).await,
        Route::RoomKeysGet => backup::get_keys_route(ctx, req).await,
        Route::RoomKeysDelete => backup::delete_keys_route(ctx, req).await,
        Route::RoomKeysRoomPut => backup::put_room_keys_route(ctx, req, &p[0]).await,
        Route::RoomKeysRoomGet => backup::get_room_keys_route(ctx, req, &p[0]).await,
        Route::RoomKeysRoomDelete => backup::delete_room_keys_route(ctx, req, &p[0]).await,
        Route::RoomKeysSessionPut => backup::put_session_key_route(ctx, req, &p[0], &p[1]).await,
        Route::RoomKeysSessionGet => backup::get_session_key_route(ctx, req, &p[0], &p[1]).await,
        Route::RoomKeysSessionDelete => backup::delete_session_key_route(ctx, req, &p[0], &p[1]).await,
        Route::ThirdPartyProtocols => thirdparty::protocols_route(ctx, req).await,
        Route::ThreePids => account::threepids_route(ctx, req).await,
        Route::TurnServer => voip::turn_server_route(ctx, req).await,
    }
}
