//! The server's shared state: the registry of models, the configuration,
//! the optional router, request log, device store, open indexes and recent
//! answers (for feedback), and the counters behind /metrics.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use crate::registry::{ModelSpec, Registry};
use crate::served::ServerConfig;

/// What the handlers record beyond the HTTP counters that `outpost-web`
/// keeps for every request (the /metrics exposition is in `metrics.rs`).
#[derive(Debug)]
pub struct Metrics {
    pub streams_cancelled: Counter,
    /// Request arrival to first generated token.
    pub ttft: Histogram,
    /// Between consecutive generated tokens of one request.
    pub inter_token: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            streams_cancelled: Counter::default(),
            ttft: outpost_web::metrics::latency_histogram(),
            inter_token: outpost_web::metrics::latency_histogram(),
        }
    }
}

impl Metrics {
    pub fn cancelled(&self) {
        self.streams_cancelled.inc();
    }
}

/// Everything the handlers share.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub config: ServerConfig,
    pub metrics: Metrics,
    /// Hybrid routing of the OpenAI endpoints; None: everything local.
    pub router: Option<Arc<outpost_router::Router>>,
    /// `--log-requests`: every request body, as JSON lines.
    pub request_log: Option<crate::reqlog::RequestLog>,
    /// `--store`: the device store the models come from, and its spool.
    pub store: Option<Arc<crate::device::StoreLink>>,
    /// Indexes opened for `outpost.retrieve`.
    pub indexes: crate::retrieve::Indexes,
    /// Recent answers, for `POST /v1/feedback`.
    pub answers: crate::answers::Answers,
}

impl AppState {
    /// Routes OpenAI requests between the local models and the cloud.
    pub fn with_router(mut self, router: outpost_router::Router) -> Self {
        self.router = Some(Arc::new(router));
        self
    }

    /// Logs every request body received.
    pub fn with_request_log(mut self, log: crate::reqlog::RequestLog) -> Self {
        self.request_log = Some(log);
        self
    }

    /// Serves a device store's active models (see `device.rs`).
    pub fn with_store(mut self, link: crate::device::StoreLink) -> Self {
        self.store = Some(Arc::new(link));
        self
    }

    pub fn new(specs: Vec<ModelSpec>, config: ServerConfig) -> Self {
        AppState {
            registry: Arc::new(Registry::new(specs, config.clone())),
            config,
            metrics: Metrics::default(),
            router: None,
            request_log: None,
            store: None,
            indexes: crate::retrieve::Indexes::default(),
            answers: crate::answers::Answers::default(),
        }
    }
}
