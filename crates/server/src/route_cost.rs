//! What a routed answer cost, for its route telemetry event: wraps the
//! response body so that once it has been sent (or the client went away)
//! the caller learns the latency and the tokens — from `usage` when the
//! answer has it (JSON, or a stream's usage chunk), else a stream's text
//! chunks (about one token each, as the router's own speed estimates
//! count them). The body passes through unchanged; a body whose size is
//! known (a JSON answer) keeps its Content-Length.

use std::time::Instant;

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use serde_json::Value;
use tokio_stream::StreamExt;

/// The largest JSON answer read for its usage (bigger ones go uncounted).
const MAX_JSON: usize = 8 << 20;

/// What an answer cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Cost {
    pub latency_ms: f64,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
}

type Done = Box<dyn FnOnce(Cost) + Send>;

/// Watches a body; reports once, when dropped (the body ended or the
/// client hung up).
struct Watch {
    sse: bool,
    buf: Vec<u8>,
    text_chunks: u32,
    usage: Option<(Option<u32>, Option<u32>)>,
    started: Instant,
    done: Option<Done>,
}

fn usage(v: &Value) -> Option<(Option<u32>, Option<u32>)> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    let n = |k: &str| u[k].as_u64().map(|n| n.min(u64::from(u32::MAX)) as u32);
    Some((n("prompt_tokens"), n("completion_tokens")))
}

fn has_text(v: &Value) -> bool {
    let c = &v["choices"][0];
    [&c["delta"]["content"], &c["text"]]
        .iter()
        .any(|t| t.as_str().is_some_and(|s| !s.is_empty()))
}

impl Watch {
    fn feed(&mut self, bytes: &[u8]) {
        if !self.sse {
            if self.buf.len() + bytes.len() <= MAX_JSON {
                self.buf.extend_from_slice(bytes);
            }
            return;
        }
        self.buf.extend_from_slice(bytes);
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let Some(data) = line.strip_prefix(b"data: ") else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<Value>(data) else {
                continue;
            };
            if let Some(u) = usage(&v) {
                self.usage = Some(u);
            }
            if has_text(&v) {
                self.text_chunks += 1;
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(done) = self.done.take() else {
            return;
        };
        if !self.sse {
            self.usage = serde_json::from_slice::<Value>(&self.buf)
                .ok()
                .and_then(|v| usage(&v));
        }
        let (prompt, completion) = self.usage.unwrap_or((None, None));
        done(Cost {
            latency_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            prompt_tokens: prompt,
            completion_tokens: completion.or((self.sse).then_some(self.text_chunks)),
        });
    }
}

/// `res` with its body watched; `done` gets the cost when it ends.
pub(crate) fn watch(
    res: Response,
    started: Instant,
    done: impl FnOnce(Cost) + Send + 'static,
) -> Response {
    let sse = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let (parts, body) = res.into_parts();
    // Streamed on, a body loses the length it had: say it in the head,
    // so a JSON answer keeps its Content-Length.
    let mut parts = parts;
    if let Some(n) = axum::body::HttpBody::size_hint(&body).exact() {
        parts.headers.insert(header::CONTENT_LENGTH, n.into());
    }
    let mut w = Watch {
        sse,
        buf: Vec::new(),
        text_chunks: 0,
        usage: None,
        started,
        done: Some(Box::new(done)),
    };
    let stream = body.into_data_stream().map(move |chunk| {
        if let Ok(b) = &chunk {
            w.feed(b);
        }
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    async fn cost_of(res: Response) -> (Cost, Vec<u8>) {
        let got = Arc::new(Mutex::new(None));
        let g = got.clone();
        let res = watch(res, Instant::now(), move |c| {
            *g.lock().expect("lock") = Some(c)
        });
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        let c = got.lock().expect("lock").take().expect("reported");
        (c, body.to_vec())
    }

    #[tokio::test]
    async fn json_usage_and_stream_chunks_are_counted_and_bodies_pass_through() {
        let json = r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
        let res = Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json))
            .expect("response");
        let (c, body) = cost_of(res).await;
        assert_eq!((c.prompt_tokens, c.completion_tokens), (Some(12), Some(3)));
        assert_eq!(body, json.as_bytes());
        // A whole body keeps its length (clients see Content-Length).
        let res = Response::new(Body::from(json));
        let res = watch(res, Instant::now(), |_| {});
        assert_eq!(
            res.headers()[header::CONTENT_LENGTH],
            json.len().to_string().as_str()
        );
        // A stream split mid-line: three text chunks, a role chunk, [DONE].
        let sse = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: {\"choices\":[{\"text\":\"c\"}]}\n\ndata: [DONE]\n\n";
        let (a, b) = sse.split_at(70);
        let parts: Vec<Result<String, std::io::Error>> = vec![Ok(a.into()), Ok(b.into())];
        let res = Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(tokio_stream::iter(parts)))
            .expect("response");
        let (c, body) = cost_of(res).await;
        assert_eq!((c.prompt_tokens, c.completion_tokens), (None, Some(3)));
        assert_eq!(body, sse.as_bytes());
        // A usage chunk wins over the count.
        let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9}}\n\n";
        let res = Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from(sse))
            .expect("response");
        let (c, _) = cost_of(res).await;
        assert_eq!((c.prompt_tokens, c.completion_tokens), (Some(5), Some(9)));
        // Not JSON: no tokens, a latency all the same.
        let res = Response::new(Body::from("oops"));
        let (c, _) = cost_of(res).await;
        assert_eq!((c.prompt_tokens, c.completion_tokens), (None, None));
        assert!(c.latency_ms >= 0.0);
    }
}
