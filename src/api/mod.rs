//! HTTP handlers, one file per API area (the Conduit layout), and the request path: the
//! route table (`crate::routes`) names the handler and the authentication, which
//! [`handle`] performs before calling it.

pub mod admin;
pub mod auth;
pub mod client;
pub mod federation;
pub mod health;
pub mod media;
pub mod oauth;
pub mod params;

use std::future::Future;
use std::pin::Pin;

use crate::api::auth::{authenticate, Authed};
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Method, Request, Response};
use crate::router::{resolve, Auth, Params};
use crate::store::accounts;

/// A handler as the route table holds it: `(ctx, request, caller, path parameters)`.
pub type Handler = for<'a> fn(&'a Ctx, &'a Request, &'a Identity, &'a Params) -> Pin<Box<dyn Future<Output = Result<Response>> + 'a>>;

/// Who made the request, as the endpoint's [`Auth`] required and the router established.
pub enum Identity {
    Anonymous,
    User(Authed),
    /// Another homeserver, whose `X-Matrix` signature the router verified.
    Server(ruma::OwnedServerName),
}

impl Identity {
    /// The authenticated caller; only `User`/`Admin` rows call this, after the router has
    /// authenticated, so the error is a table mistake, not the client's.
    pub fn user(&self) -> Result<&Authed> {
        match self {
            Identity::User(a) => Ok(a),
            _ => Err(crate::error::Error::internal("handler needs a user on a route without one")),
        }
    }

    /// The origin server of a federation request; only `Server` rows call this.
    pub fn server(&self) -> Result<&ruma::ServerName> {
        match self {
            Identity::Server(s) => Ok(s),
            _ => Err(crate::error::Error::internal("handler needs a server on a route without one")),
        }
    }
}

/// Serves one request. Never panics on bad input: every failure is a Matrix error.
pub async fn handle(ctx: &Ctx, req: Request) -> Response {
    if req.method == Method::Options {
        // CORS preflight: the headers are added by the caller.
        return Response::ok(serde_json::json!({}));
    }
    serve(ctx, &req).await.into()
}

async fn serve(ctx: &Ctx, req: &Request) -> Result<Response> {
    let (ep, params) = resolve(req.method, &req.path)?;
    // AUTH_MODE=oauth: the legacy login API is off (spec: "Authentication API discovery").
    if ep.legacy_login && !ctx.config.legacy_login() {
        return Err(crate::err!(Unrecognized, "This server uses OAuth 2.0 for login: see /_matrix/client/v1/auth_metadata"));
    }
    let who = match ep.auth {
        Auth::None => Identity::Anonymous,
        Auth::User => Identity::User(authenticate(ctx, req, ep.confirms_token).await?),
        Auth::Admin => {
            let me = authenticate(ctx, req, false).await?;
            if accounts::get_user(&ctx.db, me.user_id.as_str()).await?.is_none_or(|u| u.is_admin == 0) {
                return Err(crate::err!(Forbidden, "You are not a server admin"));
            }
            Identity::User(me)
        }
        Auth::Server => Identity::Server(crate::service::federation::auth::authenticate(ctx, req).await?),
    };
    if let Identity::User(me) = &who {
        // For the request's log line, which records only a hash of it.
        ctx.meter.set_user(me.user_id.as_str());
    }
    (ep.handler)(ctx, req, &who, &params).await
}
