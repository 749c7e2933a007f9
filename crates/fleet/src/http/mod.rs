//! The fleet's HTTP API (axum). Every `/admin/v1` request is authenticated
//! (the bootstrap admin token, an API token, or a console session cookie
//! plus its CSRF token on changes) and authorised by its matched route's
//! role in `access.rs` (a route missing there is refused). Handlers are
//! thin: parse the body strictly ([`JsonBody`]: a malformed or oversized body is a 4xx that
//! names the problem, before anything runs), call a [`Fleet`] method, and
//! answer JSON.
//!
//! ```text
//! GET  /  /console.css  /console.js                the web console (console.rs)
//! GET  /health  /metrics  /openapi.json  /docs     no token
//! GET  /v1/keys                                     the signing key(s) devices pin
//! POST /v1/devices/register                         app key → device id + token
//! POST /v1/devices/check-in                         device token; profile → manifests
//! GET  /v1/artifacts/{digest}                       device or admin token; HTTP Range
//! POST /v1/telemetry                                device token; a batch of events (1 MiB)
//! POST /v1/content-keys                             device token; a sealed blob's key, HPKE-wrapped
//! PUT  /admin/v1/blobs/{digest}                     upload a GGUF (hash checked)
//! GET  /admin/v1/releases        POST (publish)     GET /admin/v1/releases/{model}/{version}
//! POST /admin/v1/revoke                             POST /admin/v1/kill-switch
//! GET  /admin/v1/channels        POST               POST /admin/v1/channels/{name}/release
//! GET  /admin/v1/rollouts        POST               GET /admin/v1/rollouts/{id}
//! POST /admin/v1/rollouts/{id}/{advance|pause|resume|complete|rollback}
//! GET  /admin/v1/devices?channel=&class=&limit=&offset=     GET /admin/v1/devices/{id}
//! POST /admin/v1/devices/{id}/pins   DELETE /admin/v1/devices/{id}/pins/{model}
//! POST /admin/v1/devices/{id}/channel   POST /admin/v1/devices/{id}/revoke
//! PUT  /admin/v1/content-keys/{digest}              a sealed blob's content key (never shown)
//! POST /admin/v1/app-keys        GET /admin/v1/status          GET /admin/v1/audit
//! GET  /admin/v1/users   POST   DELETE /admin/v1/users/{name}     (admin)
//! GET  /admin/v1/tokens  POST   POST /admin/v1/tokens/{id}/revoke (admin)
//! GET  /admin/v1/whoami
//! POST /console/v1/login  /console/v1/logout       session cookie + CSRF token
//! GET  /admin/v1/cohorts?minutes=60                 telemetry per cohort over a window
//! GET  /admin/v1/cohorts/series?minutes=&step=&class=&channel=   per release, over time
//! GET  /admin/v1/fragmentation?stale_days=7         devices per release × channel × class
//! ```

mod accounts;
mod admin;
mod artifacts;
mod console;
mod device;
mod experiments;
pub mod openapi;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use crate::access::{self, Principal};
use crate::error::FleetError;
use crate::Fleet;

/// Largest JSON body a device may send.
pub const DEVICE_BODY_LIMIT: usize = 64 << 10;
/// Largest telemetry batch body.
pub const TELEMETRY_BODY_LIMIT: usize = 1 << 20;
/// Largest JSON body of an admin request.
pub const ADMIN_BODY_LIMIT: usize = 1 << 20;

/// The whole API.
pub fn router(fleet: Arc<Fleet>) -> Router {
    let blob_limit = usize::try_from(fleet.config().max_blob_bytes).unwrap_or(usize::MAX);
    let admin = Router::new()
        .route(
            "/blobs/{digest}",
            put(artifacts::upload).layer(DefaultBodyLimit::max(blob_limit)),
        )
        .route("/releases", get(admin::releases).post(admin::publish))
        .route("/releases/{model}/{version}", get(admin::release))
        .route("/revoke", post(admin::revoke))
        .route("/kill-switch", post(admin::kill_switch))
        .route(
            "/channels",
            get(admin::channels).post(admin::create_channel),
        )
        .route("/channels/{name}/release", post(admin::set_channel_release))
        .route(
            "/rollouts",
            get(admin::rollouts).post(admin::create_rollout),
        )
        .route("/rollouts/{id}", get(admin::rollout))
        .route("/rollouts/{id}/{action}", post(admin::rollout_action))
        .route("/devices", get(admin::devices))
        .route("/devices/{id}", get(admin::device))
        .route("/devices/{id}/pins", post(admin::pin))
        .route(
            "/devices/{id}/pins/{model}",
            axum::routing::delete(admin::unpin),
        )
        .route("/devices/{id}/channel", post(admin::move_device))
        .route("/devices/{id}/revoke", post(admin::revoke_device))
        .route(
            "/content-keys/{digest}",
            axum::routing::put(admin::put_content_key),
        )
        .route("/app-keys", post(admin::create_app_key))
        .route("/status", get(admin::status))
        .route("/audit", get(admin::audit))
        .route("/cohorts", get(admin::cohorts))
        .route("/cohorts/series", get(admin::cohort_series))
        .route("/fragmentation", get(admin::fragmentation))
        .route(
            "/experiments",
            get(experiments::list).post(experiments::create),
        )
        .route("/experiments/{id}", get(experiments::one))
        .route("/experiments/{id}/{action}", post(experiments::action))
        .route("/users", get(accounts::users).post(accounts::create_user))
        .route(
            "/users/{name}",
            axum::routing::delete(accounts::delete_user),
        )
        .route(
            "/tokens",
            get(accounts::tokens).post(accounts::create_token),
        )
        .route("/tokens/{id}/revoke", post(accounts::revoke_token))
        .route("/whoami", get(accounts::whoami))
        // After routing (route_layer), so the matched route is known.
        .route_layer(middleware::from_fn_with_state(fleet.clone(), admin_auth))
        .layer(DefaultBodyLimit::max(ADMIN_BODY_LIMIT));
    let device = Router::new()
        .route("/keys", get(device::keys))
        .route("/devices/register", post(device::register))
        .route("/devices/check-in", post(device::check_in))
        .route("/content-keys", post(device::content_key))
        .route("/artifacts/{digest}", get(artifacts::download))
        .route(
            "/telemetry",
            post(device::telemetry).layer(DefaultBodyLimit::max(TELEMETRY_BODY_LIMIT)),
        )
        .layer(DefaultBodyLimit::max(DEVICE_BODY_LIMIT));
    let metrics = Arc::new(fleet.metrics().exposition());
    let router = Router::new()
        .route(
            "/metrics",
            get(outpost_web::metrics::serve).with_state(metrics.clone()),
        )
        .route("/health", get(health))
        .merge(outpost_web::docs::routes(&openapi::document()))
        .nest("/admin/v1", admin)
        .route("/", get(console::index))
        .route("/console.css", get(console::css))
        .route("/console.js", get(console::js))
        .route("/console/v1/login", post(accounts::login))
        .route("/console/v1/logout", post(accounts::logout))
        .nest("/v1", device)
        .fallback(not_found)
        .with_state(fleet);
    outpost_web::observe(router, metrics)
}

#[utoipa::path(get, path = "/health", tag = "ops", summary = "Liveness (no token needed)",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = crate::api::Health)))]
async fn health() -> Json<crate::api::Health> {
    Json(crate::api::Health {
        status: "ok".into(),
    })
}

async fn not_found(req: Request) -> FleetError {
    FleetError::NotFound(format!(
        "no route for {} {}; see the API list in crates/fleet/src/http/mod.rs",
        req.method(),
        req.uri().path()
    ))
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, FleetError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        FleetError::Unauthorized("missing Authorization: Bearer <token> header".into())
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            FleetError::Unauthorized("Authorization header must be \"Bearer <token>\"".into())
        })
}

/// Authenticates an admin request, checks its role for the matched route,
/// and hands the handlers its [`Principal`].
async fn admin_auth(State(fleet): State<Arc<Fleet>>, mut req: Request, next: Next) -> Response {
    let p = match authenticate(&fleet, req.headers(), req.method()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().trim_start_matches("/admin/v1").to_string())
        .unwrap_or_default();
    if let Err(why) = access::authorize(&p, req.method().as_str(), &route) {
        return FleetError::Forbidden(why).into_response();
    }
    req.extensions_mut().insert(p);
    let from = client_address(&req);
    // In a task of its own: a client that hangs up mid-change does not
    // cancel it between its database commit and the replicas' lock release
    // (the change runs to its end either way; the answer is what is lost).
    let run = tokio::spawn(crate::AUDIT_FROM.scope(from, next.run(req)));
    match run.await {
        Ok(resp) => resp,
        Err(e) => {
            FleetError::Internal(format!("the admin request's task failed: {e}")).into_response()
        }
    }
}

/// The client's address, for the audit log (the peer's: a proxy in front
/// shows as itself).
pub(crate) fn client_address(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".into(), |c| c.0.ip().to_string())
}

/// Who the request is: a bearer token (the bootstrap admin token or a live
/// API token) or else a console session cookie, whose changes must carry
/// its CSRF token.
fn authenticate(
    fleet: &Fleet,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Principal, FleetError> {
    if headers.contains_key(header::AUTHORIZATION) {
        let t = bearer(headers)?;
        return fleet.principal_for_bearer(t, actor(headers)).ok_or_else(|| {
            FleetError::Unauthorized(
                "the token is neither the admin token nor a live API token (revoked and expired tokens are refused)".into(),
            )
        });
    }
    let Some(cookie) = accounts::session_cookie(headers) else {
        return Err(FleetError::Unauthorized(
            "missing Authorization: Bearer <token> header (or a console session: POST /console/v1/login)".into(),
        ));
    };
    let (p, _) = fleet.principal_for_session(&cookie).ok_or_else(|| {
        FleetError::Unauthorized("the console session has ended; log in again".into())
    })?;
    if !matches!(*method, Method::GET | Method::HEAD) {
        check_csrf(fleet, &cookie, headers)?;
    }
    Ok(p)
}

/// A change under a console session must carry the session's CSRF token
/// (`X-CSRF-Token`, from the login answer): a page on another site can make
/// the browser send the cookie, never the token.
pub(crate) fn check_csrf(
    fleet: &Fleet,
    cookie: &str,
    headers: &HeaderMap,
) -> Result<(), FleetError> {
    let Some((_, want)) = fleet.principal_for_session(cookie) else {
        return Err(FleetError::Unauthorized(
            "the console session has ended; log in again".into(),
        ));
    };
    let given = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if given.is_some_and(|t| crate::keys::secret_hash(t) == want) {
        Ok(())
    } else {
        Err(FleetError::Forbidden(
            "missing or wrong X-CSRF-Token header: a change made under a console session must carry the session's CSRF token from the login answer".into(),
        ))
    }
}

/// Who did an admin action with the bootstrap admin token: the
/// `X-Outpost-Actor` header (1-64 printable characters), else `admin`.
pub(crate) fn actor(headers: &HeaderMap) -> String {
    headers
        .get("x-outpost-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        })
        .map_or_else(|| "admin".to_string(), str::to_string)
}

/// A strictly parsed JSON body: oversized → 413, not JSON or not the
/// expected shape → 400 naming serde's complaint (field, line, column).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = FleetError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(body_error)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A body that could not be read: too large (413) or broken (400).
pub(crate) fn body_error(e: axum::extract::rejection::BytesRejection) -> FleetError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        FleetError::TooLarge(format!("request body is too large: {e}"))
    } else {
        FleetError::BadRequest(format!("could not read the request body: {e}"))
    }
}

/// Parses JSON strictly; an empty body is `{}`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FleetError> {
    let bytes = if bytes.is_empty() { &b"{}"[..] } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| FleetError::BadRequest(format!("request body is not valid: {e}")))
}

/// The error answers every fleet route may give, one body for all:
/// `{"error": {"code", "message"}}`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Errors {
    /// A field, parameter or body is malformed or invalid (the message names it)
    #[response(status = 400)]
    BadRequest(outpost_protocol::fleet::FleetErrorBody),
    /// The bearer token is missing, or is not one this route takes
    #[response(status = 401)]
    Unauthorized(outpost_protocol::fleet::FleetErrorBody),
    /// Refused to this caller by name (a revoked device; a device asking for a blob it was not assigned)
    #[response(status = 403)]
    Forbidden(outpost_protocol::fleet::FleetErrorBody),
    /// No such release, channel, rollout, device or blob
    #[response(status = 404)]
    NotFound(outpost_protocol::fleet::FleetErrorBody),
    /// Valid, but the fleet's state does not allow it (e.g. a second active rollout)
    #[response(status = 409)]
    Conflict(outpost_protocol::fleet::FleetErrorBody),
    /// The body is over the route's limit
    #[response(status = 413)]
    TooLarge(outpost_protocol::fleet::FleetErrorBody),
    /// Too many requests of this kind from this caller; wait and retry
    #[response(status = 429)]
    TooManyRequests(outpost_protocol::fleet::FleetErrorBody),
}

/// The extra errors of the blob routes.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum BlobErrors {
    /// The Range header cannot be served (`Content-Range: bytes */LEN`)
    #[response(status = 416)]
    Range(outpost_protocol::fleet::FleetErrorBody),
    /// The store's disk budget is spent
    #[response(status = 507)]
    Full(outpost_protocol::fleet::FleetErrorBody),
}
