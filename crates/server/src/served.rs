//! What the server serves: its configuration, and a loaded model with the
//! engine that runs it (a scheduler, or an embedding worker).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use outpost_engine::{
    ChatTemplate, EmbedConfig, Embedder, LoadOptions, Model, Scheduler, SchedulerConfig,
};
use outpost_protocol::ollama::KeepAlive;

/// How the server runs its models.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Concurrent sequences per model.
    pub slots: u32,
    /// Requests per model that may wait for a slot; beyond them, 503.
    pub queue: u32,
    /// Context per sequence; None = the model's training context capped at 8192.
    pub ctx_per_slot: Option<u32>,
    pub threads: Option<u32>,
    /// Required as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// How long an idle model stays loaded, unless a request says otherwise.
    pub keep_alive: KeepAlive,
    /// Bytes all loaded models may hold together (weights + KV cache +
    /// compute buffers, estimated before loading).
    pub memory_budget: u64,
    /// On SIGTERM or Ctrl-C: how long in-flight requests may run on.
    pub grace: Duration,
    /// Prompt-lookup drafting for greedy requests: most tokens per step
    /// (0: off), and whether guesses are decoded even where they do not
    /// pay. See `outpost_engine::SchedulerConfig::draft_max`.
    pub draft_max: usize,
    pub draft_always: bool,
    /// Where `outpost.retrieve` finds indexes (`NAME.sqlite`); None: refused.
    pub index_dir: Option<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            slots: 4,
            queue: 32,
            ctx_per_slot: None,
            threads: None,
            api_key: None,
            body_limit: 4 << 20,
            keep_alive: KeepAlive::DEFAULT,
            memory_budget: default_memory_budget(),
            grace: Duration::from_secs(10),
            draft_max: outpost_engine::MAX_DRAFT,
            draft_always: false,
            index_dir: None,
        }
    }
}

/// Three quarters of physical memory (from /proc/meminfo), else 4 GiB.
pub fn default_memory_budget() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    });
    total_kib.map_or(4 << 30, |k| k * 1024 / 4 * 3)
}

/// What loading a model needs to know of it (the registry's `ModelSpec`
/// gives it).
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub name: String,
    pub path: PathBuf,
    pub template: Option<Arc<ChatTemplate>>,
    pub digest: String,
    pub ctx_per_slot: u32,
    /// A sealed model's in-memory plaintext, which `path` names.
    pub backing: Option<Arc<outpost_store::MemoryModel>>,
}

/// The engine's wait for a sealed model's bytes still being opened.
pub(crate) fn arrival_of(m: &Arc<outpost_store::MemoryModel>) -> outpost_engine::gguf::Arrival {
    let m = m.clone();
    outpost_engine::gguf::Arrival::new(move |n| m.wait_for(n).map_err(|e| e.to_string()))
}

/// One model being served.
pub struct ServedModel {
    /// The name clients use in `model`.
    pub name: String,
    pub model: Arc<Model>,
    /// Text generation or embeddings, as the model is.
    pub serving: Serving,
    /// For models without their own chat template.
    pub template: Option<Arc<ChatTemplate>>,
    /// `sha256:<hex>` of the GGUF file: the `system_fingerprint`.
    pub digest: String,
    pub created: u64,
    /// The tool-call syntax of the template it chats with (`template`
    /// first, else the model's own), or None for the generic format;
    /// detected once, at load.
    pub tool_family: Option<outpost_protocol::tool_native::Family>,
    /// Keeps a sealed model's in-memory plaintext open while it is served.
    pub backing: Option<Arc<outpost_store::MemoryModel>>,
}

/// What a loaded model runs: a scheduler for models that generate, an
/// embedding worker for models that pool.
pub enum Serving {
    Generate(Scheduler),
    Embed(Embedder),
}

impl ServedModel {
    /// Loads `spec`'s file and starts its scheduler (or embedding worker).
    pub fn load(spec: &LoadSpec, cfg: &ServerConfig) -> Result<ServedModel, crate::ServerError> {
        // A sealed model's plaintext (in memory only) is locked against
        // swap where the system allows.
        let opts = LoadOptions {
            mlock: spec.backing.is_some(),
            arrival: spec.backing.as_ref().map(arrival_of),
            ..LoadOptions::default()
        };
        let model = Arc::new(Model::load(&spec.path, &opts)?);
        let serving = if model.info().embedding.is_some() {
            Serving::Embed(Embedder::start(
                model.clone(),
                EmbedConfig {
                    threads: cfg.threads.unwrap_or_else(outpost_engine::default_threads),
                    ..EmbedConfig::default()
                },
            )?)
        } else {
            Serving::Generate(Scheduler::start(
                model.clone(),
                SchedulerConfig {
                    slots: cfg.slots,
                    n_ctx_per_slot: Some(spec.ctx_per_slot),
                    threads: cfg.threads,
                    draft_max: cfg.draft_max,
                    draft_always: cfg.draft_always,
                    ..SchedulerConfig::default()
                },
            )?)
        };
        let tool_family = match &spec.template {
            Some(t) => Some(t.source()),
            None => model.chat_template().map(ChatTemplate::source),
        }
        .and_then(outpost_protocol::tool_native::Family::detect);
        Ok(ServedModel {
            name: spec.name.clone(),
            model,
            serving,
            tool_family,
            template: spec.template.clone(),
            digest: spec.digest.clone(),
            created: now(),
            backing: spec.backing.clone(),
        })
    }
}

impl ServedModel {
    /// The scheduler, or the refusal an embedding model gives a chat request.
    pub fn scheduler(&self) -> Result<&Scheduler, outpost_engine::EngineError> {
        match &self.serving {
            Serving::Generate(s) => Ok(s),
            Serving::Embed(_) => Err(outpost_engine::EngineError::NotGenerative {
                model: self.name.clone(),
            }),
        }
    }

    /// The embedding worker, or the refusal a generating model gives.
    pub fn embedder(&self) -> Result<&Embedder, outpost_engine::EngineError> {
        match &self.serving {
            Serving::Embed(e) => Ok(e),
            Serving::Generate(_) => Err(outpost_engine::EngineError::NotEmbedding {
                model: self.name.clone(),
            }),
        }
    }
}

/// `sha256:<hex>` of the file at `path`.
pub(crate) fn file_digest(path: &Path) -> std::io::Result<String> {
    Ok(outpost_store::hash_file(path)?.0.to_string())
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
