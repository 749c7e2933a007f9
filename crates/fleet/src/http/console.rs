//! The fleet console's assets (#22), embedded in the binary and served by
//! `outpost fleet serve` at `/` (no second server, nothing from a CDN):
//! `console/index.html`, `console.css` and `console.js`. The page speaks
//! the admin API with the session cookie from `/console/v1/login`. Served
//! with a Content-Security-Policy that allows only this origin's script
//! and style (no inline script), no framing and no caching of the page.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../console/index.html");
const CSS: &str = include_str!("../../console/console.css");
const JS: &str = include_str!("../../console/console.js");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /`: the console page.
pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /console.css`.
pub async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

/// `GET /console.js`.
pub async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}
