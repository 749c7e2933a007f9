//! HTTP conventions that `outpost serve` and `outpost fleet serve` share, so
//! that both behave alike behind a proxy and in a log search:
//! - every request gets an id: the client's `x-request-id` if it sent one
//!   (at most 128 visible ASCII characters), else a fresh one, and every
//!   response echoes it;
//! - every request runs in one `tracing` span named `request` with its
//!   method, path and `request_id`, so each line logged while serving it
//!   (and the span's own start, response and end-of-stream lines at debug
//!   level) carries the id.
//!
//! - every request is counted and timed per route into the process's
//!   Prometheus [`metrics::Metrics`], which `GET /metrics` serves.
//!
//! - every accepted connection has `TCP_NODELAY` ([`no_delay`]): answers
//!   are small and written in pieces (head, body, SSE events), and Nagle's
//!   algorithm would hold each piece until the previous one is
//!   acknowledged.
//!
//! It knows no handler and no service state: [`observe`] wraps a finished
//! router.

pub mod docs;
pub mod metrics;

pub use metrics::Metrics;

/// `listener` with `TCP_NODELAY` set on every connection it accepts (axum
/// leaves it off).
pub fn no_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderName, HeaderValue, Request};
use axum::Router;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The header a request id travels in, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Ids unique within a process and, through the start time in them, across
/// restarts and replicas: `<start time, hex>-<counter>`.
#[derive(Clone)]
struct Ids {
    start: u64,
    next: &'static AtomicU64,
}

static NEXT: AtomicU64 = AtomicU64::new(1);

impl MakeRequestId for Ids {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{:x}-{n}", self.start))
            .ok()
            .map(RequestId::new)
    }
}

/// A client's id is kept when it is printable and not absurdly long;
/// anything else is replaced, so logs never carry control characters.
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

/// Drops a client's unusable id before [`SetRequestIdLayer`] looks, so that
/// it makes a fresh one instead.
async fn screen(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req
        .headers()
        .get(REQUEST_ID)
        .is_some_and(|v| !acceptable(v))
    {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

/// `router` with request ids, one span per request and its count and
/// latency in `metrics` (outermost layers, so that even a rejected or
/// unknown request has all three).
pub fn observe<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    metrics: Arc<Metrics>,
) -> Router<S> {
    let header = HeaderName::from_static(REQUEST_ID);
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        })
        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
        .on_response(DefaultOnResponse::new().level(Level::DEBUG))
        .on_failure(DefaultOnFailure::new().level(Level::WARN));
    // Layers run outermost last-added first: screen, set id, echo id, span,
    // metrics.
    router
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::record,
        ))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, Ids { start, next: &NEXT }))
        .layer(axum::middleware::from_fn(screen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_printable_short_ids_are_kept() {
        assert!(acceptable(&HeaderValue::from_static("abc-123_XYZ")));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        assert!(!acceptable(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap_or(HeaderValue::from_static(""))
        ));
        assert!(acceptable(
            &HeaderValue::from_str(&"a".repeat(128)).unwrap_or(HeaderValue::from_static(""))
        ));
    }

    #[test]
    fn made_ids_differ() {
        let mut ids = Ids {
            start: 7,
            next: &NEXT,
        };
        let req = Request::new(());
        let a = ids.make_request_id(&req).map(|r| r.into_header_value());
        let b = ids.make_request_id(&req).map(|r| r.into_header_value());
        assert!(a.is_some() && a != b, "{a:?} {b:?}");
    }
}
