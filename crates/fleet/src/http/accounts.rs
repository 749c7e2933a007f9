//! Account routes (#22): users and API tokens under `/admin/v1` (admins
//! only, by `access.rs`), `whoami`, and the console's login and logout
//! under `/console/v1` (no token: the session cookie is what they make and
//! end). The session cookie is HttpOnly, SameSite=Strict, Path=/, and
//! Secure when the fleet is told its clients use HTTPS
//! (`FleetConfig::secure_cookies`) or the request came through a proxy
//! that says so (`X-Forwarded-Proto: https`).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::{parse_json, JsonBody};
use crate::access::Principal;
use crate::accounts::SESSION_COOKIE;
use crate::api::{
    CreateToken, CreateUser, Done, Login, LoginView, NewToken, TokenView, UserView, WhoAmI,
};
use crate::error::FleetError;
use crate::Fleet;

type Fl = State<Arc<Fleet>>;

#[utoipa::path(get, path = "/admin/v1/whoami", security(("admin" = [])), tag = "accounts", summary = "Who this request acts as, and its role", responses((status = 200, description = "The caller", body = WhoAmI), super::Errors))]
pub async fn whoami(Extension(p): Extension<Principal>) -> Json<WhoAmI> {
    Json(WhoAmI {
        actor: p.actor,
        role: p.role,
        session: p.session,
        apps: p.apps.map(|a| a.into_iter().collect()),
    })
}

#[utoipa::path(get, path = "/admin/v1/users", security(("admin" = [])), tag = "accounts", summary = "Console users (admin)", responses((status = 200, description = "Users", body = Vec<UserView>), super::Errors))]
pub async fn users(State(f): Fl) -> Json<Vec<UserView>> {
    Json(f.users())
}

#[utoipa::path(post, path = "/admin/v1/users", security(("admin" = [])), tag = "accounts", summary = "Add a console user (admin); the password is kept as an argon2id hash", request_body = CreateUser, responses((status = 201, description = "The user", body = UserView), super::Errors))]
pub async fn create_user(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    JsonBody(b): JsonBody<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), FleetError> {
    Ok((StatusCode::CREATED, Json(f.create_user(&p.actor, b).await?)))
}

#[utoipa::path(delete, path = "/admin/v1/users/{name}", security(("admin" = [])), tag = "accounts", summary = "Delete a console user and end their sessions (admin)", params(("name" = String, Path)), responses((status = 200, description = "Deleted", body = Done), super::Errors))]
pub async fn delete_user(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Done>, FleetError> {
    f.delete_user(&p.actor, &name).await?;
    Ok(Json(Done { ok: true }))
}

#[utoipa::path(get, path = "/admin/v1/tokens", security(("admin" = [])), tag = "accounts", summary = "API tokens, never their secrets (admin)", responses((status = 200, description = "Tokens", body = Vec<TokenView>), super::Errors))]
pub async fn tokens(State(f): Fl) -> Json<Vec<TokenView>> {
    Json(f.tokens())
}

#[utoipa::path(post, path = "/admin/v1/tokens", security(("admin" = [])), tag = "accounts", summary = "Make an API token for a role (admin); its secret is shown this once", request_body = CreateToken, responses((status = 201, description = "The token", body = NewToken), super::Errors))]
pub async fn create_token(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    JsonBody(b): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), FleetError> {
    Ok((StatusCode::CREATED, Json(f.create_token(&p, b).await?)))
}

#[utoipa::path(post, path = "/admin/v1/tokens/{id}/revoke", security(("admin" = [])), tag = "accounts", summary = "Revoke an API token at once (admin)", params(("id" = String, Path)), responses((status = 200, description = "The token", body = TokenView), super::Errors))]
pub async fn revoke_token(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, FleetError> {
    Ok(Json(f.revoke_token(&p.actor, &id).await?))
}

/// The session cookie's value, if the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

/// A login must be JSON (`Content-Type: application/json`, which a form on
/// another site cannot send without a CORS preflight) and not marked
/// cross-site by the browser (`Sec-Fetch-Site`): no other site can sign a
/// visitor in as someone else, or spend their failed logins.
fn same_site_json(headers: &HeaderMap) -> Result<(), FleetError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(FleetError::BadRequest(
            "a login must be sent as Content-Type: application/json".into(),
        ));
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Err(FleetError::Forbidden(
            "a login from another site is refused".into(),
        ));
    }
    Ok(())
}

fn set_cookie(f: &Fleet, headers: &HeaderMap, value: &str, max_age_s: i64) -> HeaderValue {
    let https = f.config().secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let c = cookie::Cookie::build((SESSION_COOKIE, value.to_string()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(https)
        .max_age(cookie::time::Duration::seconds(max_age_s))
        .build();
    HeaderValue::from_str(&c.to_string()).unwrap_or(HeaderValue::from_static(""))
}

#[utoipa::path(post, path = "/console/v1/login", tag = "accounts", summary = "Log a console user in: a fresh session cookie (HttpOnly, SameSite=Strict) and its CSRF token", request_body = Login, responses((status = 200, description = "Signed in; the cookie is in Set-Cookie", body = LoginView), super::Errors))]
pub async fn login(State(f): Fl, req: Request) -> Response {
    let from = super::client_address(&req);
    let headers = req.headers().clone();
    if let Err(e) = same_site_json(&headers) {
        return e.into_response();
    }
    let old = session_cookie(&headers);
    let bytes = match axum::body::to_bytes(req.into_body(), 64 << 10).await {
        Ok(b) => b,
        Err(e) => {
            return FleetError::BadRequest(format!("could not read the request body: {e}"))
                .into_response()
        }
    };
    let b: Login = match parse_json(&bytes) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match f.login(&b.name, &b.password, &from, old.as_deref()).await {
        Ok(l) => {
            let max_age = i64::try_from(crate::access::SESSION_SECS).unwrap_or(i64::MAX);
            let mut r = Json(l.view).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&f, &headers, &l.cookie, max_age),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(post, path = "/console/v1/logout", tag = "accounts", summary = "End this console session (needs its X-CSRF-Token)", responses((status = 200, description = "Signed out; the cookie is cleared", body = Done), super::Errors))]
pub async fn logout(State(f): Fl, req: Request) -> Response {
    let from = super::client_address(&req);
    let headers = req.headers();
    let Some(cookie) = session_cookie(headers) else {
        return FleetError::Unauthorized("no console session to end".into()).into_response();
    };
    if let Err(e) = super::check_csrf(&f, &cookie, headers) {
        return e.into_response();
    }
    if let Err(e) = f.logout(&cookie, &from).await {
        return e.into_response();
    }
    let mut r = Json(Done { ok: true }).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&f, headers, "", 0));
    r
}
