//! `outpost serve`: the OpenAI- and Ollama-compatible HTTP daemon.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use outpost_protocol::ollama::KeepAlive;
use outpost_server::{default_memory_budget, AppState, ModelSpec, ServerConfig};

use crate::models;
use crate::run::load_template;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Models to serve: paths or short names (smollm2-135m, gemma3-270m).
    /// Clients name them by their short name, or the file name without .gguf.
    #[arg(required_unless_present = "store")]
    pub models: Vec<String>,
    /// Also serve the active models of a device store (the folder `outpost
    /// agent --store` installs into), by their model names. POST
    /// /admin/reload or SIGHUP re-reads it: new requests get a newly
    /// installed file, requests in flight finish on the old one. Each
    /// request's metrics (never its text) go to the store's telemetry
    /// spool, which the agent ships to the fleet.
    #[arg(long, value_name = "DIR")]
    pub store: Option<std::path::PathBuf>,
    /// Where the device key lives, as given to `outpost agent`: `file` or
    /// `kernel-keyring`. A sealed model in the store is opened with the
    /// content key the agent kept (wrapped to that device key) into memory
    /// only, and locked against swap where allowed.
    #[arg(long, value_name = "KIND", default_value = "file", requires = "store")]
    pub device_key_store: outpost_agent::device_key::KeyStoreKind,
    /// Address to bind. Anything but loopback needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    #[arg(long, short = 'p', default_value_t = 8642)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every request but /health.
    #[arg(long, env = "OUTPOST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Concurrent sequences per model.
    #[arg(long, default_value_t = 4)]
    pub slots: u32,
    /// Requests per model that may wait for a free sequence; more get 503
    /// with Retry-After.
    #[arg(long, default_value_t = 32)]
    pub queue: u32,
    /// How long an idle model stays loaded: a duration (30s, 5m, 1h), 0 to
    /// unload as soon as it is idle, -1 to keep it loaded. Requests may set
    /// their own (Ollama's keep_alive).
    #[arg(long, default_value = "5m", value_parser = parse_keep_alive, allow_hyphen_values = true)]
    pub keep_alive: KeepAlive,
    /// Memory all loaded models may hold together (weights + KV cache +
    /// compute buffers), e.g. 2GiB, 800MiB. Default: 3/4 of physical memory.
    /// A load that would not fit unloads idle models first, else is refused.
    #[arg(long, value_parser = parse_bytes)]
    pub memory_budget: Option<u64>,
    /// Load every model at start instead of on first use.
    #[arg(long)]
    pub preload: bool,
    /// On SIGTERM or Ctrl-C, how long requests in flight may run on before
    /// they are cancelled (seconds).
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
    /// Context per sequence. Default: the model's training context, at most 8192.
    #[arg(long, short = 'c')]
    pub ctx_size: Option<u32>,
    /// CPU threads. Default: all cores.
    #[arg(long, short = 't')]
    pub threads: Option<u32>,
    /// Prompt-lookup drafting for greedy requests: guess up to N next tokens
    /// from earlier text and check them in the same step (same output).
    /// 0 to 8; 0 turns it off. Guesses are decoded only while they pay:
    /// each model times a narrow and a wide decode step when it loads, and
    /// a request's guesses must be confirmed often enough for that cost
    /// (`outpost bench` shows both).
    #[arg(long, default_value_t = outpost_engine::MAX_DRAFT, value_name = "N")]
    pub draft_max: usize,
    /// Decode guesses whether or not they pay (for measurements).
    #[arg(long)]
    pub draft_always: bool,
    /// Where `outpost index` keeps indexes, for chat requests with
    /// `"outpost": {"retrieve": {"index": NAME}}` (grounded answers with
    /// citations). Default: ~/.local/share/outpost/indexes.
    #[arg(long, value_name = "DIR", env = "OUTPOST_INDEX_DIR")]
    pub index_dir: Option<std::path::PathBuf>,
    /// Chat template for models without one: chatml, gemma, llama3 or a
    /// Jinja file; `MODEL=NAME|FILE` sets it for one model (repeatable).
    #[arg(long, value_name = "[MODEL=]NAME|FILE")]
    pub chat_template: Vec<String>,
    #[command(flatten)]
    pub route: crate::route::RouteServeArgs,
}

fn parse_keep_alive(s: &str) -> Result<KeepAlive, String> {
    KeepAlive::parse(s)
}

/// `2GiB`, `800MiB`, `1.5G`, `500M`, or plain bytes.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size: give e.g. 2GiB, 800MiB or a byte count"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}: use B, KiB, MiB, GiB, TiB (or kB, MB, GB, TB)"
            ))
        }
    };
    Ok((value * scale) as u64)
}

fn served_name(spec: &str, path: &Path) -> String {
    if models::KNOWN.iter().any(|(n, _)| *n == spec) {
        return spec.to_string();
    }
    path.file_stem()
        .map_or_else(|| spec.to_string(), |s| s.to_string_lossy().into_owned())
}

/// The --chat-template value for one model: its own `MODEL=...` entry, else
/// an entry without a model name.
fn template_for(specs: &[String], spec: &str, name: &str) -> Option<String> {
    let own = specs.iter().find_map(|t| {
        let (m, v) = t.split_once('=')?;
        (m == spec || m == name).then(|| v.to_string())
    });
    own.or_else(|| specs.iter().find(|t| !t.contains('=')).cloned())
}

pub fn serve(a: ServeArgs) -> Result<()> {
    for t in &a.chat_template {
        if let Some((m, _)) = t.split_once('=') {
            if a.store.is_none()
                && !a.models.iter().any(|spec| {
                    spec == m || models::resolve(spec).is_ok_and(|p| served_name(spec, &p) == m)
                })
            {
                bail!(
                    "--chat-template {t:?} names model {m:?}, which is not among the served models"
                );
            }
        }
    }
    if !a.host.is_loopback() && a.api_key.is_none() {
        bail!("binding {} exposes the models beyond this machine: give --api-key (or OUTPOST_API_KEY), or bind 127.0.0.1", a.host);
    }
    if !(a.grace >= 0.0 && a.grace.is_finite()) {
        bail!("--grace {} is not a number of seconds", a.grace);
    }
    let cfg = ServerConfig {
        slots: a.slots,
        queue: a.queue,
        ctx_per_slot: a.ctx_size,
        threads: a.threads,
        api_key: a.api_key.clone(),
        keep_alive: a.keep_alive,
        memory_budget: a.memory_budget.unwrap_or_else(default_memory_budget),
        grace: Duration::from_secs_f64(a.grace),
        draft_max: a.draft_max,
        draft_always: a.draft_always,
        index_dir: crate::index::index_path(a.index_dir.as_deref(), "x")
            .ok()
            .and_then(|p| p.parent().map(std::path::Path::to_path_buf)),
        ..ServerConfig::default()
    };
    crate::run::check_draft_max(cfg.draft_max)?;
    if cfg.slots == 0 || cfg.slots > 256 {
        bail!("--slots {} must be between 1 and 256", cfg.slots);
    }
    let mib = |b: u64| b / (1024 * 1024);
    let mut specs: Vec<ModelSpec> = Vec::new();
    for spec in &a.models {
        let path = models::resolve(spec)?;
        let name = served_name(spec, &path);
        let template = load_template(template_for(&a.chat_template, spec, &name).as_deref())?;
        if specs.iter().any(|m| m.name == name) {
            bail!("model name {name:?} given twice");
        }
        let m = ModelSpec::inspect(&name, &path, template.clone(), &cfg)?;
        let fits = if m.memory.total() > cfg.memory_budget {
            format!(
                " - more than the {} MiB budget: it will be refused until --memory-budget is raised",
                mib(cfg.memory_budget)
            )
        } else {
            String::new()
        };
        tracing::info!(
            "model {name}: {} ({}), needs {}{fits}",
            path.display(),
            m.digest,
            m.memory
        );
        specs.push(m);
    }
    let mut link = None;
    if let Some(dir) = &a.store {
        let mut templates = std::collections::HashMap::new();
        for t in &a.chat_template {
            if let Some((m, v)) = t.split_once('=') {
                if let Some(tpl) = load_template(Some(v))? {
                    templates.insert(m.to_string(), tpl);
                }
            }
        }
        let version = outpost_protocol::manifest::Version::parse(env!("CARGO_PKG_VERSION"))
            .map_err(anyhow::Error::msg)?;
        let l = outpost_server::StoreLink::open(dir, templates, version, version)
            .with_context(|| format!("--store {}", dir.display()))?
            .with_unsealer(Box::new(KeptKeys {
                root: dir.clone(),
                keys: a.device_key_store.open(dir),
            }));
        for m in l.specs(&cfg, &Default::default())? {
            if specs.iter().any(|s| s.name == m.name) {
                bail!("model name {:?} is both given and in the store", m.name);
            }
            tracing::info!(
                "model {} (store, {}): {}, needs {}",
                m.name,
                m.release.as_ref().map_or("?", |r| r.0.as_str()),
                m.digest,
                m.memory
            );
            specs.push(m);
        }
        link = Some(l);
    }
    let names: Vec<String> = specs.iter().map(|m| m.name.clone()).collect();
    let mut state = AppState::new(specs, cfg);
    if let Some(l) = link {
        state = state.with_store(l);
    }
    let state = Arc::new(a.route.apply(state)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(async {
        if a.preload {
            for name in &names {
                let started = std::time::Instant::now();
                drop(state.registry.acquire(name, None).await.map_err(|e| {
                    anyhow::anyhow!("preloading {name}: {}", e.body.error.message)
                })?);
                tracing::info!("loaded {name} in {:.2} s", started.elapsed().as_secs_f64());
            }
        }
        let addr = SocketAddr::new(a.host, a.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (in use? try --port)"))?;
        tracing::info!(
            "listening on http://{addr} (OpenAI API at /v1, Ollama API at /api; memory budget {} MiB; Ctrl-C stops)",
            mib(state.config.memory_budget)
        );
        outpost_server::run(listener, state.clone())
            .await
            .context("serving")?;
        state.registry.unload_all().await;
        anyhow::Ok(())
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    tracing::info!("stopped");
    result
}

/// Opens a store's sealed blobs with the keys the agent kept for them.
struct KeptKeys {
    root: std::path::PathBuf,
    keys: Box<dyn outpost_agent::device_key::DeviceKeyStore + Send + Sync>,
}

impl outpost_server::Unsealer for KeptKeys {
    fn open(
        &self,
        digest: &outpost_protocol::Digest,
    ) -> Result<outpost_store::MemoryModel, String> {
        let store = outpost_store::Store::open_reader(&self.root).map_err(|e| e.to_string())?;
        outpost_agent::sealed::open_installed(&store, &self.root, self.keys.as_ref(), digest)
            .map_err(|e| e.to_string())
    }
}
