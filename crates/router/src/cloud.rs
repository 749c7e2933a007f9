//! The OpenAI-compatible cloud client: the only outbound HTTP of the
//! server. It sends only a [`Redacted`] body, which only the guard can
//! make, so nothing reaches the cloud without having passed the guard.

use std::time::Duration;

use outpost_guard::{Redacted, Texts};
use serde_json::Value;

use crate::policy::CloudConfig;

/// A request body on its way to the cloud. The guard visits every string
/// in it, wherever it sits (messages, content parts, prompt, stop words).
#[derive(Debug, Clone)]
pub struct CloudBody(pub Value);

impl Texts for CloudBody {
    fn for_each_text(&mut self, f: &mut dyn FnMut(&mut String)) {
        fn walk(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
            match v {
                Value::String(s) => f(s),
                Value::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
                Value::Object(o) => o.values_mut().for_each(|x| walk(x, f)),
                _ => {}
            }
        }
        walk(&mut self.0, f)
    }
}

/// Which OpenAI endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
        }
    }
}

/// Why a cloud call gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("the cloud at {url} could not be reached: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the cloud at {url} did not answer within {ms} ms")]
    Timeout { url: String, ms: u64 },
    #[error("the cloud at {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the cloud at {url} sent an answer that is not JSON: {detail}")]
    BadAnswer { url: String, detail: String },
}

impl CloudError {
    /// Whether this says the cloud is unhealthy (feeds the breaker), as
    /// opposed to refusing this one request.
    pub fn is_outage(&self) -> bool {
        match self {
            CloudError::Unreachable { .. } | CloudError::Timeout { .. } => true,
            CloudError::Status { status, .. } => *status >= 500 || *status == 429,
            CloudError::BadAnswer { .. } => true,
        }
    }
}

/// The cloud's answer.
pub enum CloudAnswer {
    Json(Value),
    /// An SSE body, still arriving.
    Stream(reqwest::Response),
}

/// One upstream: base URL, key, model.
#[derive(Debug, Clone)]
pub struct CloudClient {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    model: Option<String>,
    timeout: Duration,
}

impl CloudClient {
    /// `url` up to `/v1`; the key comes from the environment variable the
    /// config names (`OUTPOST_CLOUD_API_KEY` by default).
    pub fn new(url: &str, cfg: &CloudConfig) -> Result<CloudClient, String> {
        crate::policy::check_url(url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(CloudClient {
            http,
            base: url.trim_end_matches('/').to_string(),
            key: std::env::var(&cfg.api_key_env)
                .ok()
                .filter(|k| !k.is_empty()),
            model: cfg.model.clone(),
            timeout: Duration::from_millis(cfg.timeout_ms),
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// The model name the cloud gets for a request that named `model`.
    pub fn model_for(&self, model: &str) -> String {
        self.model.clone().unwrap_or_else(|| model.to_string())
    }

    /// Sends a guarded body. Streaming requests return once the response
    /// head arrived (within the timeout); the rest streams.
    pub async fn send(
        &self,
        endpoint: Endpoint,
        body: &Redacted<CloudBody>,
        stream: bool,
    ) -> Result<CloudAnswer, CloudError> {
        let url = format!("{}{}", self.base, endpoint.path());
        let mut req = self.http.post(&url).json(&body.as_inner().0);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        if !stream {
            req = req.timeout(self.timeout);
        }
        let ms = self.timeout.as_millis() as u64;
        let res = match tokio::time::timeout(self.timeout, req.send()).await {
            Err(_) => return Err(CloudError::Timeout { url, ms }),
            Ok(Err(e)) if e.is_timeout() => return Err(CloudError::Timeout { url, ms }),
            Ok(Err(e)) => {
                return Err(CloudError::Unreachable {
                    url,
                    detail: error_chain(&e),
                })
            }
            Ok(Ok(r)) => r,
        };
        let status = res.status().as_u16();
        if !res.status().is_success() {
            let mut body = res.text().await.unwrap_or_default();
            body.truncate(500);
            return Err(CloudError::Status { url, status, body });
        }
        if stream {
            return Ok(CloudAnswer::Stream(res));
        }
        let bytes = res.bytes().await.map_err(|e| CloudError::Unreachable {
            url: url.clone(),
            detail: error_chain(&e),
        })?;
        serde_json::from_slice(&bytes)
            .map(CloudAnswer::Json)
            .map_err(|e| CloudError::BadAnswer {
                url,
                detail: e.to_string(),
            })
    }
}

/// An error with its causes (reqwest hides "connection refused" in them).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
