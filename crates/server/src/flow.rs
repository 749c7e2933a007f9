//! How a request's engine events reach its client, for both APIs: to the
//! end on a blocking thread (non-streaming), or rendered line by line into
//! a channel that the response body drains (SSE or NDJSON). A client that
//! goes away cancels its generation: a closed channel for streams, a
//! dropped handler future for the rest. The request's [`Lease`] travels
//! with it, so its model stays loaded until the last byte is out.

use std::sync::Arc;
use std::time::Instant;

use outpost_engine::{Completion, Event, Piece, RequestHandle};

use crate::error::ApiError;
use crate::registry::Lease;
use crate::served::now;
use crate::state::AppState;

/// A blocking task that panicked or was cancelled.
pub(crate) fn worker_died(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal("running the request", e.to_string())
}

/// Times a request's tokens into the TTFT and inter-token histograms, and
/// (with `--store`) writes its `inference` telemetry event at the end.
struct Timer {
    state: Arc<AppState>,
    spec: Arc<crate::registry::ModelSpec>,
    first: Option<Instant>,
    last: Option<Instant>,
    started: Instant,
}

impl Timer {
    fn new(state: Arc<AppState>, started: Instant, lease: &Lease) -> Self {
        Timer {
            state,
            spec: lease.spec_arc(),
            first: None,
            last: None,
            started,
        }
    }

    /// The request ended: `Ok` with its completion, or an engine error.
    fn finish(&self, done: Result<&Completion, ()>) {
        let Some(link) = &self.state.store else {
            return;
        };
        let now = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
        let (tokens, cached, error) = match done {
            Ok(c) => (c.tokens.len() as u32, c.cached_tokens as u32, None),
            Err(()) => (0, 0, Some("engine".to_string())),
        };
        let tok_s = match (self.first, self.last) {
            (Some(f), Some(l)) if tokens > 1 && l > f => {
                f64::from(tokens - 1) / (l - f).as_secs_f64()
            }
            _ => 0.0,
        };
        link.record(
            &self.spec,
            outpost_protocol::telemetry::EventData::Inference(
                outpost_protocol::telemetry::Inference {
                    ttft_ms: self.first.map_or(0.0, |f| ms(self.started, f)),
                    latency_ms: ms(self.started, now),
                    tokens,
                    tok_s,
                    cached_tokens: cached,
                    error,
                },
            ),
        );
    }
    fn token(&mut self) {
        let now = Instant::now();
        match self.last {
            None => self
                .state
                .metrics
                .ttft
                .observe((now - self.started).as_secs_f64()),
            Some(prev) => self
                .state
                .metrics
                .inter_token
                .observe((now - prev).as_secs_f64()),
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
    }
}

/// Cancels the request if dropped armed: the handler future was dropped
/// because its client went away.
struct CancelOnDrop {
    handle_cancel: Option<outpost_engine::CancelToken>,
    state: Arc<AppState>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.handle_cancel.take() {
            c.cancel();
            self.state.metrics.cancelled();
        }
    }
}

/// Runs a request to the end on a blocking thread; every piece is kept.
pub(crate) async fn run_to_end(
    state: Arc<AppState>,
    started: Instant,
    lease: Lease,
    handle: RequestHandle,
) -> Result<(Completion, Vec<Piece>), ApiError> {
    let mut guard = CancelOnDrop {
        handle_cancel: Some(handle.cancel.clone()),
        state: state.clone(),
    };
    let result = tokio::task::spawn_blocking(move || {
        let mut timer = Timer::new(state, started, &lease);
        let _lease = lease;
        let mut pieces = Vec::new();
        let done = handle.wait(|p| {
            if p.token >= 0 {
                timer.token();
            }
            pieces.push(p.clone());
        });
        timer.finish(done.as_ref().map_err(|_| ()));
        Ok((done?, pieces))
    })
    .await
    .map_err(worker_died)?;
    guard.handle_cancel = None;
    result
}

/// How a stream is framed.
pub(crate) struct Framing {
    /// The line for an engine failure mid-stream.
    pub error: fn(&ApiError) -> String,
    /// A last line after the end (`[DONE]` for SSE).
    pub end: Option<&'static str>,
}

/// Renders a request's events into lines on a blocking thread and hands
/// them to the response body; when the client is gone (the channel
/// closed), cancels the generation. `render` sees `Started`, `Piece` and
/// `Done`.
pub(crate) fn forward(
    state: Arc<AppState>,
    started: Instant,
    lease: Lease,
    handle: RequestHandle,
    framing: Framing,
    mut render: impl FnMut(Event) -> Vec<String> + Send + 'static,
) -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::task::spawn_blocking(move || {
        let mut timer = Timer::new(state.clone(), started, &lease);
        let _lease = lease;
        let send = |data: String| {
            let sent = tx.blocking_send(data).is_ok();
            if !sent {
                handle.cancel.cancel();
                state.metrics.cancelled();
            }
            sent
        };
        for ev in handle.events.iter() {
            match &ev {
                Event::Piece(p) if p.token >= 0 => timer.token(),
                Event::Done(c) => timer.finish(Ok(c)),
                Event::Failed(_) => timer.finish(Err(())),
                _ => {}
            }
            let (data, end) = match ev {
                Event::Failed(e) => (vec![(framing.error)(&ApiError::from(e))], true),
                ev @ Event::Done(_) => (render(ev), true),
                ev => (render(ev), false),
            };
            for d in data {
                if !send(d) {
                    return;
                }
            }
            if end {
                if let Some(last) = framing.end {
                    send(last.into());
                }
                return;
            }
        }
    });
    rx
}

/// JSON text of `v` (serialising our own types cannot fail; if it did, the
/// client gets an error object instead of a panic).
pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":{{\"message\":\"{e}\"}}}}"))
}

/// A unique id suffix for responses.
pub(crate) fn next_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{:x}{:06x}", now(), N.fetch_add(1, Ordering::Relaxed))
}
