//! Users, roles and API tokens (#22) through the router: every admin route
//! the OpenAPI document lists has a role in `access.rs` (and the table no
//! stale one); a viewer's token is refused (403) on every mutating admin
//! endpoint, enumerated from that document; an operator pauses a rollout
//! but may not pull the kill switch; tokens are shown once, stored hashed,
//! die when revoked or expired, and survive a restart; console sessions
//! need their CSRF token on changes, are new on every login (no fixation),
//! and a user is locked out after repeated failed logins.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::*;
use outpost_fleet::access::{required_role, Role, ADMIN_ROUTES, MAX_FAILED_LOGINS};
use serde_json::{json, Value};
use tower::ServiceExt;

/// One request with headers; the answer's status, headers and JSON.
async fn send(
    t: &TestFleet,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = outpost_fleet::router(t.fleet.clone())
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, v)
}

/// The admin operations of the OpenAPI document: (METHOD, path under
/// /admin/v1).
fn documented_admin_routes() -> Vec<(String, String)> {
    let doc = serde_json::to_value(outpost_fleet::http::openapi::document()).expect("json");
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        let Some(rest) = path.strip_prefix("/admin/v1") else {
            continue;
        };
        for method in ops.as_object().expect("ops").keys() {
            out.push((method.to_uppercase(), rest.to_string()));
        }
    }
    assert!(out.len() >= 30, "{out:?}");
    out
}

/// `GET /admin/v1/whoami` with `headers`: its status.
async fn whoami(t: &TestFleet, headers: &[(&str, &str)]) -> StatusCode {
    send(t, "GET", "/admin/v1/whoami", headers, None).await.0
}

async fn make_token(t: &TestFleet, name: &str, role: &str) -> (String, String) {
    let v = admin(
        t,
        "POST",
        "/admin/v1/tokens",
        Some(json!({"name": name, "role": role, "expires_in_days": 7})),
    )
    .await;
    let secret = v["token"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("opt_"), "{v}");
    (v["id"].as_str().expect("id").to_string(), secret)
}

#[test]
fn every_documented_admin_route_has_a_role_and_no_role_is_stale() {
    let documented = documented_admin_routes();
    for (m, p) in &documented {
        assert!(
            required_role(m, p).is_some(),
            "{m} /admin/v1{p} has no role in crates/fleet/src/access.rs"
        );
    }
    for r in ADMIN_ROUTES {
        assert!(
            documented.iter().any(|(m, p)| m == r.method && p == r.path),
            "{} {} is in the role table but not an API route",
            r.method,
            r.path
        );
    }
}

#[tokio::test]
async fn a_viewer_token_is_refused_on_every_mutating_endpoint() {
    let t = open("viewer-403").await;
    let (_, viewer) = make_token(&t, "dashboards", "viewer").await;
    let auth = format!("Bearer {viewer}");
    let mut refused = 0;
    for (method, path) in documented_admin_routes() {
        // Path parameters filled with something; the role check comes
        // before the handler looks at them or at the body.
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let url = format!("/admin/v1{concrete}");
        let (s, _, v) = send(
            &t,
            &method,
            &url,
            &[("authorization", &auth)],
            Some(json!({})),
        )
        .await;
        if method == "GET" {
            let allowed = required_role(&method, &path) == Some(Role::Viewer);
            assert_eq!(
                s == StatusCode::FORBIDDEN,
                !allowed,
                "viewer GET {url}: {s} {v}"
            );
        } else {
            assert_eq!(s, StatusCode::FORBIDDEN, "viewer {method} {url}: {v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("is a viewer")),
                "{v}"
            );
            refused += 1;
        }
    }
    assert!(refused >= 20, "only {refused} mutating routes");
    // The same token may read.
    let (s, _, v) = send(
        &t,
        "GET",
        "/admin/v1/status",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn an_operator_pauses_a_rollout_a_viewer_cannot_and_the_audit_names_them() {
    let t = open("operator").await;
    publish(&t, "m", "v1", "0.1.0").await;
    publish(&t, "m", "v2", "0.1.0").await;
    release_on_stable(&t, "m", "v1").await;
    let r = start_rollout(&t, "m", "v2", &[10, 100], 3600).await;
    let id = r["id"].as_u64().expect("id");
    let (_, op) = make_token(&t, "release-bot", "operator").await;
    let (_, viewer) = make_token(&t, "wallboard", "viewer").await;
    let pause = format!("/admin/v1/rollouts/{id}/pause");
    let body = json!({"reason": "crash rate"});
    let bearer = |s: &str| format!("Bearer {s}");
    let (s, _, v) = send(
        &t,
        "POST",
        &pause,
        &[("authorization", &bearer(&viewer))],
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _, v) = send(
        &t,
        "POST",
        &pause,
        &[("authorization", &bearer(&op))],
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "paused", "{v}");
    let (s, _, v) = send(
        &t,
        "POST",
        "/admin/v1/kill-switch",
        &[("authorization", &bearer(&op))],
        Some(json!({"freeze": true, "reason": "x"})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "operators cannot pull the kill switch: {v}"
    );
    let audit = admin(&t, "GET", "/admin/v1/audit?limit=10", None).await;
    let paused = audit
        .as_array()
        .expect("audit")
        .iter()
        .find(|a| a["action"] == "rollout.pause")
        .expect("a pause in the audit log");
    assert!(
        paused["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("token:release-bot (tok_")),
        "{paused}"
    );
}

#[tokio::test]
async fn tokens_are_shown_once_stored_hashed_and_die_when_revoked_or_expired() {
    let t = open("tokens").await;
    let (id, secret) = make_token(&t, "ci", "operator").await;
    let auth = format!("Bearer {secret}");
    let (s, _, who) = send(
        &t,
        "GET",
        "/admin/v1/whoami",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(who["role"], "operator", "{who}");
    let listed = admin(&t, "GET", "/admin/v1/tokens", None).await;
    assert!(
        !listed.to_string().contains(&secret),
        "the list shows no secret"
    );
    // The database (and its write-ahead log) hold the token's digest, never
    // the token.
    let hay = stored_text(&t);
    let digest = outpost_protocol::Digest::sha256(secret.as_bytes()).to_string();
    assert!(hay.contains(&digest), "the token's digest is stored");
    assert!(!hay.contains(&secret[4..]), "the database holds no secret");
    // An operator may not make tokens (admin only), let alone an admin one.
    let (s, _, _) = send(
        &t,
        "POST",
        "/admin/v1/tokens",
        &[("authorization", &auth)],
        Some(json!({"name": "up", "role": "admin"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Survives a restart.
    let t = reopened(t).await;
    let s = whoami(&t, &[("authorization", &auth)]).await;
    assert_eq!(s, StatusCode::OK, "a token survives a restart");
    admin(&t, "POST", &format!("/admin/v1/tokens/{id}/revoke"), None).await;
    let (s, _, v) = send(
        &t,
        "GET",
        "/admin/v1/whoami",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "revoked: {v}");
    // Expiry, by the fleet's clock.
    let (_, short) = make_token(&t, "short", "viewer").await;
    let auth = format!("Bearer {short}");
    t.clock.advance(7 * 86_400 - 1);
    let s = whoami(&t, &[("authorization", &auth)]).await;
    assert_eq!(s, StatusCode::OK);
    t.clock.advance(1);
    let s = whoami(&t, &[("authorization", &auth)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "expired");
    let (s, _, v) = send(
        &t,
        "POST",
        "/admin/v1/tokens",
        &[("authorization", &format!("Bearer {ADMIN}"))],
        Some(json!({"name": "long", "role": "viewer", "expires_in_days": 400})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v.to_string().contains("1-365"), "{v}");
}

/// Logs `name` in; the session cookie's value, its Set-Cookie line and the
/// CSRF token.
async fn login(
    t: &TestFleet,
    name: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> (String, String, String) {
    let (s, h, v) = send(
        t,
        "POST",
        "/console/v1/login",
        extra,
        Some(json!({"name": name, "password": password})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let line = h["set-cookie"].to_str().expect("ascii").to_string();
    let value = line
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("outpost_session="))
        .expect("the session cookie")
        .to_string();
    (
        value,
        line,
        v["csrf_token"].as_str().expect("csrf").to_string(),
    )
}

#[tokio::test]
async fn sessions_need_csrf_rotate_on_login_and_lock_out_after_failures() {
    let t = open("sessions").await;
    publish(&t, "m", "v1", "0.1.0").await;
    publish(&t, "m", "v2", "0.1.0").await;
    release_on_stable(&t, "m", "v1").await;
    let id = start_rollout(&t, "m", "v2", &[10, 100], 3600).await["id"]
        .as_u64()
        .expect("id");
    let (s, _, v) = send(
        &t,
        "POST",
        "/admin/v1/users",
        &[("authorization", &format!("Bearer {ADMIN}"))],
        Some(json!({"name": "olivia", "role": "operator", "password": "short"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a short password: {v}");
    admin(
        &t,
        "POST",
        "/admin/v1/users",
        Some(json!({"name": "olivia", "role": "operator", "password": "correct horse battery"})),
    )
    .await;
    let users = admin(&t, "GET", "/admin/v1/users", None).await;
    assert!(
        !users.to_string().contains("argon2"),
        "no hash shown: {users}"
    );

    // Session fixation: a cookie the client brings is never adopted.
    let planted = "outpost_session=ops_planted_by_an_attacker";
    let (cookie, line, csrf) = login(
        &t,
        "olivia",
        "correct horse battery",
        &[("cookie", planted)],
    )
    .await;
    assert_ne!(cookie, "ops_planted_by_an_attacker");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(line.contains(attr), "{line}");
    }
    assert!(!line.contains("Secure"), "plain HTTP: {line}");
    let jar = format!("outpost_session={cookie}");
    let (s, _, who) = send(&t, "GET", "/admin/v1/whoami", &[("cookie", &jar)], None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (who["actor"].as_str(), who["session"].as_bool()),
        (Some("user:olivia"), Some(true))
    );
    let s = whoami(&t, &[("cookie", planted)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // A change without the CSRF token, or with another, is refused.
    let pause = format!("/admin/v1/rollouts/{id}/pause");
    let body = json!({"reason": "from the console"});
    let (s, _, v) = send(&t, "POST", &pause, &[("cookie", &jar)], Some(body.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v.to_string().contains("X-CSRF-Token"), "{v}");
    let (s, _, _) = send(
        &t,
        "POST",
        &pause,
        &[("cookie", &jar), ("x-csrf-token", "csrf_guess")],
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, v) = send(
        &t,
        "POST",
        &pause,
        &[("cookie", &jar), ("x-csrf-token", &csrf)],
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Logging in again with the old session's cookie ends that session.
    let (second, _, _) = login(
        &t,
        "olivia",
        "correct horse battery",
        &[("cookie", &jar), ("x-forwarded-proto", "https")],
    )
    .await;
    let s = whoami(&t, &[("cookie", &jar)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the old session is gone");
    let (_, line, csrf2) = login(
        &t,
        "olivia",
        "correct horse battery",
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert!(line.contains("Secure"), "behind an HTTPS proxy: {line}");
    let jar2 = format!("outpost_session={second}");
    let s = whoami(&t, &[("cookie", &jar2)]).await;
    assert_eq!(s, StatusCode::OK);
    // Logout needs the CSRF token of its own session.
    let (s, _, _) = send(
        &t,
        "POST",
        "/console/v1/logout",
        &[("cookie", &jar2), ("x-csrf-token", &csrf2)],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Lock-out: after MAX_FAILED_LOGINS wrong passwords even the right one
    // is refused until the lock-out ends.
    for i in 0..MAX_FAILED_LOGINS {
        let (s, _, v) = send(
            &t,
            "POST",
            "/console/v1/login",
            &[],
            Some(json!({"name": "olivia", "password": format!("wrong {i}")})),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    }
    let right = json!({"name": "olivia", "password": "correct horse battery"});
    let (s, _, locked) = send(&t, "POST", "/console/v1/login", &[], Some(right.clone())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "locked: {locked}");
    t.clock.advance(outpost_fleet::access::LOCKOUT_SECS);
    // A lock-out that ran out starts the count again: one more wrong
    // password does not lock the user again.
    let (s, _, wrong) = send(
        &t,
        "POST",
        "/console/v1/login",
        &[],
        Some(json!({"name": "olivia", "password": "wrong again"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, v) = send(&t, "POST", "/console/v1/login", &[], Some(right)).await;
    assert_eq!(s, StatusCode::OK, "after the lock-out: {v}");
    // An unknown user gets the same answer as a wrong password.
    let (s, _, v) = send(
        &t,
        "POST",
        "/console/v1/login",
        &[],
        Some(json!({"name": "mallory", "password": "whatever at all"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The same answer for an unknown name, a wrong password and a locked
    // user: it says nothing about which names exist.
    assert_eq!(v, locked);
    assert_eq!(v, wrong);
    // Only JSON, and not from another site (login CSRF).
    let body = json!({"name": "olivia", "password": "correct horse battery"});
    let (s, _, v) = send(
        &t,
        "POST",
        "/console/v1/login",
        &[("content-type", "text/plain")],
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _, v) = send(
        &t,
        "POST",
        "/console/v1/login",
        &[("sec-fetch-site", "cross-site")],
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let audit = admin(&t, "GET", "/admin/v1/audit?limit=50", None).await;
    let actions: Vec<&str> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|a| a["actor"] == "user:olivia")
        .filter_map(|a| a["action"].as_str())
        .collect();
    for want in ["user.login", "user.login_failed", "rollout.pause"] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
}

#[tokio::test]
async fn deleting_a_user_revokes_the_tokens_they_made() {
    let t = open("delete-user").await;
    admin(
        &t,
        "POST",
        "/admin/v1/users",
        Some(json!({"name": "ada", "role": "admin", "password": "correct horse battery"})),
    )
    .await;
    let (cookie, _, csrf) = login(&t, "ada", "correct horse battery", &[]).await;
    let jar = format!("outpost_session={cookie}");
    let (s, _, v) = send(
        &t,
        "POST",
        "/admin/v1/tokens",
        &[("cookie", &jar), ("x-csrf-token", &csrf)],
        Some(json!({"name": "adas-ci", "role": "operator"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let auth = format!("Bearer {}", v["token"].as_str().expect("secret"));
    let s = whoami(&t, &[("authorization", &auth)]).await;
    assert_eq!(s, StatusCode::OK);
    admin(&t, "DELETE", "/admin/v1/users/ada", None).await;
    let s = whoami(&t, &[("authorization", &auth)]).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the deleted user's token died with them"
    );
    let s = whoami(&t, &[("cookie", &jar)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "and their session");
}
