//! What the server serves: loaded models, each with its scheduler, and the
//! counters behind /metrics.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use outpost_engine::{ChatTemplate, LoadOptions, Model, Scheduler, SchedulerConfig};
use sha2::{Digest, Sha256};

/// How the server runs its models.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Concurrent sequences per model.
    pub slots: u32,
    /// Context per sequence; None = the model's training context capped at 8192.
    pub ctx_per_slot: Option<u32>,
    pub threads: Option<u32>,
    /// Required as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            slots: 4,
            ctx_per_slot: None,
            threads: None,
            api_key: None,
            body_limit: 4 << 20,
        }
    }
}

/// One model being served.
pub struct ServedModel {
    /// The name clients use in `model`.
    pub name: String,
    pub model: Arc<Model>,
    pub scheduler: Scheduler,
    /// For models without their own chat template.
    pub template: Option<Arc<ChatTemplate>>,
    /// `sha256:<hex>` of the GGUF file: the `system_fingerprint`.
    pub digest: String,
    pub created: u64,
}

impl ServedModel {
    /// Loads `path`, hashes it, and starts its scheduler.
    pub fn load(
        name: &str,
        path: &Path,
        template: Option<Arc<ChatTemplate>>,
        cfg: &ServerConfig,
    ) -> Result<ServedModel, String> {
        let model =
            Arc::new(Model::load(path, &LoadOptions::default()).map_err(|e| e.to_string())?);
        let digest = file_digest(path).map_err(|e| format!("hashing {}: {e}", path.display()))?;
        let scheduler = Scheduler::start(
            model.clone(),
            SchedulerConfig {
                slots: cfg.slots,
                n_ctx_per_slot: cfg.ctx_per_slot,
                threads: cfg.threads,
                ..SchedulerConfig::default()
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(ServedModel {
            name: name.to_string(),
            model,
            scheduler,
            template,
            digest,
            created: now(),
        })
    }
}

fn file_digest(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{:x}", h.finalize()))
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A Prometheus histogram of seconds.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`], then +Inf.
    counts: [AtomicU64; 13],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        for (i, &le) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= le {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.counts[12].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Prometheus text lines for metric `name`.
    pub fn render(&self, name: &str, help: &str) -> String {
        let mut out = format!("# HELP {name} {help}\n# TYPE {name} histogram\n");
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "{name}_bucket{{le=\"{le}\"}} {}\n",
                self.counts[i].load(Ordering::Relaxed)
            ));
        }
        let n = self.counts[12].load(Ordering::Relaxed);
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {n}\n"));
        out.push_str(&format!(
            "{name}_sum {}\n",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!("{name}_count {n}\n"));
        out
    }
}

/// Request counters by endpoint and status, and latency histograms.
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub streams_cancelled: AtomicU64,
    /// Request arrival to first generated token.
    pub ttft: Histogram,
    /// Between consecutive generated tokens of one request.
    pub inter_token: Histogram,
}

impl Metrics {
    pub fn count(&self, endpoint: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((endpoint.to_string(), status)).or_insert(0) += 1;
        }
    }
    pub fn cancelled(&self) {
        self.streams_cancelled.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the handlers share.
pub struct AppState {
    pub models: Vec<ServedModel>,
    pub config: ServerConfig,
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(models: Vec<ServedModel>, config: ServerConfig) -> Self {
        AppState {
            models,
            config,
            metrics: Metrics::default(),
        }
    }

    pub fn model(&self, name: &str) -> Option<&ServedModel> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }
}
