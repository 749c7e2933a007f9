//! The models a server can serve, and which of them are loaded.
//!
//! Every model is inspected at start-up (GGUF header, sha256, memory
//! estimate) but loaded on first use. A request holds a [`Lease`] on its
//! model for as long as it runs; when the last lease of a model ends, the
//! model's keep-alive starts, and a reaper unloads it when that runs out
//! (`keep_alive` 0: at once; forever: never).
//!
//! Memory: a load that would take the loaded models past the budget first
//! unloads idle models, least recently used first; if that is not enough it
//! is refused (503 and `Retry-After` while other models are busy, 507 when
//! the model alone exceeds the budget).
//!
//! Back-pressure: each model admits its sequence slots plus a bounded queue
//! of requests; the next one gets 503 with `Retry-After`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::http::StatusCode;
use outpost_engine::gguf::GgufHeader;
use outpost_engine::{
    estimate_memory, CancelToken, ChatTemplate, GenerateRequest, MemoryEstimate, RequestHandle,
    DEFAULT_MAX_CTX,
};
use outpost_protocol::ollama::{KeepAlive, ModelDetails};

use crate::error::{ApiError, ServerError};
use crate::served::{file_digest, ServedModel, ServerConfig};

/// What is known of a model without loading it.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The name clients use.
    pub name: String,
    pub path: PathBuf,
    pub template: Option<Arc<ChatTemplate>>,
    /// `sha256:<hex>` of the file.
    pub digest: String,
    pub size: u64,
    pub modified: SystemTime,
    pub details: ModelDetails,
    /// GGUF metadata worth showing (`/api/show`'s `model_info`).
    pub info: Vec<(String, serde_json::Value)>,
    pub chat_template: Option<String>,
    /// Context per sequence.
    pub ctx_per_slot: u32,
    pub memory: MemoryEstimate,
    /// Set for embedding models (they serve /v1/embeddings and /api/embed).
    pub embedding: Option<outpost_engine::EmbeddingInfo>,
    /// The release this file is, when it came from a device store
    /// (`--store`): model version and the digest the store names it by.
    pub release: Option<(String, outpost_protocol::Digest)>,
    /// A sealed model's in-memory plaintext, which `path` names
    /// (`/proc/self/fd/N`): kept open as long as the spec lives.
    pub backing: Option<Arc<outpost_store::MemoryModel>>,
}

impl ModelSpec {
    /// Reads the header, hashes the file and estimates its memory under `cfg`.
    pub fn inspect(
        name: &str,
        path: &Path,
        template: Option<Arc<ChatTemplate>>,
        cfg: &ServerConfig,
    ) -> Result<ModelSpec, ServerError> {
        Self::inspect_with(name, path, template, cfg, None)
    }

    /// A sealed model being opened into memory in the background: its
    /// header is read as it arrives, and its digest is the manifest's
    /// plaintext digest (every chunk is authenticated under the release's
    /// key, and the install checked the whole plaintext against it), so
    /// the weights are not hashed again before they load.
    pub fn inspect_sealed(
        name: &str,
        memory: Arc<outpost_store::MemoryModel>,
        plaintext: outpost_protocol::Digest,
        template: Option<Arc<ChatTemplate>>,
        cfg: &ServerConfig,
    ) -> Result<ModelSpec, ServerError> {
        let mut spec = Self::inspect_with(
            name,
            &memory.path(),
            template,
            cfg,
            Some((&crate::served::arrival_of(&memory), plaintext)),
        )?;
        spec.backing = Some(memory);
        Ok(spec)
    }

    fn inspect_with(
        name: &str,
        path: &Path,
        template: Option<Arc<ChatTemplate>>,
        cfg: &ServerConfig,
        sealed: Option<(&outpost_engine::gguf::Arrival, outpost_protocol::Digest)>,
    ) -> Result<ModelSpec, ServerError> {
        let header = GgufHeader::read_arriving(path, sealed.as_ref().map(|s| s.0))?;
        let arch = header
            .architecture()
            .ok_or_else(|| ServerError::NoArchitecture {
                path: path.to_path_buf(),
            })?
            .to_string();
        let train = header
            .arch_u64("context_length")
            .map_or(DEFAULT_MAX_CTX, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let embedding = outpost_engine::EmbeddingInfo::of(&header, &arch);
        let ctx_per_slot = match cfg.ctx_per_slot {
            // An encoder takes each input whole, up to its training context;
            // --ctx-size is about generation.
            _ if embedding.is_some() => train,
            None => train.min(DEFAULT_MAX_CTX),
            Some(n) if n < 16 || n > train => {
                return Err(ServerError::CtxSize {
                    n,
                    name: name.to_string(),
                    train,
                })
            }
            Some(n) => n,
        };
        let memory = estimate_memory(
            &header,
            u64::from(ctx_per_slot) * u64::from(cfg.slots),
            u64::from(cfg.slots),
            512,
        )?;
        let digest = match &sealed {
            Some((_, d)) => d.to_string(),
            None => file_digest(path).map_err(|io| ServerError::Hash {
                path: path.to_path_buf(),
                io,
            })?,
        };
        let n_params = header.n_params();
        let parameter_size = header
            .str("general.size_label")
            .map(str::to_string)
            .unwrap_or_else(|| {
                if n_params >= 1_000_000_000 {
                    format!("{:.1}B", n_params as f64 / 1e9)
                } else {
                    format!("{}M", n_params / 1_000_000)
                }
            });
        let details = ModelDetails {
            parent_model: String::new(),
            format: "gguf".into(),
            family: arch.clone(),
            families: vec![arch.clone()],
            parameter_size,
            quantization_level: header.file_type_name().unwrap_or("unknown").into(),
        };
        let mut info = vec![
            ("general.architecture".to_string(), arch.clone().into()),
            ("general.parameter_count".to_string(), n_params.into()),
        ];
        if let Some(n) = header.str("general.name") {
            info.push(("general.name".into(), n.into()));
        }
        for key in [
            "context_length",
            "embedding_length",
            "block_count",
            "feed_forward_length",
            "attention.head_count",
            "attention.head_count_kv",
            "attention.sliding_window",
        ] {
            if let Some(v) = header.arch_u64(key) {
                info.push((format!("{arch}.{key}"), v.into()));
            }
        }
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(ModelSpec {
            name: name.to_string(),
            path: path.to_path_buf(),
            template,
            digest,
            size: header.file_size,
            modified,
            details,
            info,
            chat_template: header.str("tokenizer.chat_template").map(str::to_string),
            ctx_per_slot,
            memory,
            embedding,
            release: None,
            backing: None,
        })
    }
}

struct EntryState {
    loaded: Option<Arc<ServedModel>>,
    /// Requests holding a lease (running or queued in the scheduler).
    in_flight: u32,
    keep_alive: KeepAlive,
    /// When the model unloads if no request comes; None while busy or
    /// kept forever.
    expires: Option<Instant>,
    last_used: Instant,
    /// Cancel tokens of the requests in flight, by lease id.
    cancels: HashMap<u64, CancelToken>,
    /// Moving average of a request's lease time, for `Retry-After`.
    avg_secs: f64,
}

struct Entry {
    /// Replaced by a reload when the model's file changes; a lease keeps
    /// the spec it started with.
    spec: RwLock<Arc<ModelSpec>>,
    state: Mutex<EntryState>,
}

impl Entry {
    fn new(spec: ModelSpec, keep_alive: KeepAlive) -> Entry {
        Entry {
            spec: RwLock::new(Arc::new(spec)),
            state: Mutex::new(EntryState {
                loaded: None,
                in_flight: 0,
                keep_alive,
                expires: None,
                last_used: Instant::now(),
                cancels: HashMap::new(),
                avg_secs: 1.0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, EntryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spec(&self) -> Arc<ModelSpec> {
        self.spec.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Models whose file changed (new requests get the new one; requests
    /// in flight finish on the old one).
    pub replaced: Vec<String>,
    pub added: Vec<String>,
    /// Every other model served.
    pub unchanged: Vec<String>,
}

/// Load and unload counters.
#[derive(Debug, Default)]
pub struct RegistryStats {
    pub loads: AtomicU64,
    pub unloads: AtomicU64,
    pub queue_full: AtomicU64,
    pub memory_refused: AtomicU64,
}

/// Every servable model and its load state.
pub struct Registry {
    entries: RwLock<Vec<Arc<Entry>>>,
    cfg: ServerConfig,
    /// One load or eviction at a time.
    load_lock: tokio::sync::Mutex<()>,
    closing: std::sync::atomic::AtomicBool,
    next_lease: AtomicU64,
    pub stats: RegistryStats,
}

/// A loaded model, as `/api/ps` shows it.
pub struct Loaded {
    pub spec: Arc<ModelSpec>,
    pub model: Arc<ServedModel>,
    /// None: busy, or kept forever.
    pub expires: Option<Instant>,
    pub keep_alive: KeepAlive,
}

impl Registry {
    pub fn new(specs: Vec<ModelSpec>, cfg: ServerConfig) -> Registry {
        Registry {
            entries: RwLock::new(
                specs
                    .into_iter()
                    .map(|spec| Arc::new(Entry::new(spec, cfg.keep_alive)))
                    .collect(),
            ),
            cfg,
            load_lock: tokio::sync::Mutex::new(()),
            closing: false.into(),
            next_lease: AtomicU64::new(1),
            stats: RegistryStats::default(),
        }
    }

    /// A snapshot of the entries (a reload may add some meanwhile).
    fn entries(&self) -> Vec<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn specs(&self) -> std::vec::IntoIter<Arc<ModelSpec>> {
        let specs: Vec<_> = self.entries().iter().map(|e| e.spec()).collect();
        specs.into_iter()
    }

    pub fn spec(&self, name: &str) -> Option<Arc<ModelSpec>> {
        self.entries()
            .iter()
            .map(|e| e.spec())
            .find(|s| s.name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.specs().map(|s| s.name.clone()).collect()
    }

    /// The entry of model `name`, or a 404 that lists the served models.
    fn entry(&self, name: &str) -> Result<Arc<Entry>, ApiError> {
        let found = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|e| e.spec.read().unwrap_or_else(|p| p.into_inner()).name == name)
            .cloned();
        found.ok_or_else(|| ApiError::unknown_model(name, &self.names()))
    }

    fn lease(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        spec: Arc<ModelSpec>,
        model: Arc<ServedModel>,
        load: Duration,
    ) -> Lease {
        Lease {
            entry: entry.clone(),
            spec,
            id: self.next_lease.fetch_add(1, Ordering::Relaxed),
            model,
            started: Instant::now(),
            load_duration: load,
        }
    }

    /// Takes in a new list of models (a reload): a model whose file digest
    /// changed gets the new spec, and its loaded copy is let go (requests
    /// in flight finish on it; the next request loads the new file); new
    /// names are added. Models missing from `specs` stay as they are.
    pub async fn reload(&self, specs: Vec<ModelSpec>) -> ReloadReport {
        let _guard = self.load_lock.lock().await;
        let mut report = ReloadReport::default();
        let mut released = Vec::new();
        for spec in specs {
            let name = spec.name.clone();
            let existing = self.entries().into_iter().find(|e| e.spec().name == name);
            match existing {
                Some(e) if e.spec().digest == spec.digest => {
                    *e.spec.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(spec);
                }
                Some(e) => {
                    let mut st = e.lock();
                    *e.spec.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(spec);
                    st.expires = None;
                    released.extend(st.loaded.take());
                    report.replaced.push(name);
                }
                None => {
                    self.entries
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Arc::new(Entry::new(spec, self.cfg.keep_alive)));
                    report.added.push(name);
                }
            }
        }
        report.unchanged = self
            .names()
            .into_iter()
            .filter(|n| !report.replaced.contains(n) && !report.added.contains(n))
            .collect();
        if !released.is_empty() {
            self.stats
                .unloads
                .fetch_add(released.len() as u64, Ordering::Relaxed);
            // The last holder joins the scheduler thread when it lets go.
            let _ = tokio::task::spawn_blocking(move || drop(released)).await;
        }
        report
    }

    /// The loaded models.
    pub fn loaded(&self) -> Vec<Loaded> {
        self.entries()
            .iter()
            .filter_map(|e| {
                let st = e.lock();
                st.loaded.clone().map(|model| Loaded {
                    spec: e.spec(),
                    model,
                    expires: st.expires,
                    keep_alive: st.keep_alive,
                })
            })
            .collect()
    }

    /// Bytes the loaded models hold (estimated).
    pub fn memory_used(&self) -> u64 {
        self.entries()
            .iter()
            .filter(|e| e.lock().loaded.is_some())
            .map(|e| e.spec().memory.total())
            .sum()
    }

    pub fn budget(&self) -> u64 {
        self.cfg.memory_budget
    }

    /// Requests in flight over all models.
    pub fn in_flight(&self) -> u32 {
        self.entries().iter().map(|e| e.lock().in_flight).sum()
    }

    /// A lease on `name`, loading it first if needed. `keep_alive` (the
    /// request's) replaces the model's keep-alive.
    pub async fn acquire(
        self: &Arc<Self>,
        name: &str,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Lease, ApiError> {
        let entry = &self.entry(name)?;
        loop {
            if self.closing.load(Ordering::SeqCst) {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    "shutting_down",
                    None,
                    "the server is shutting down; send the request to another instance or retry once it is back",
                ));
            }
            {
                let mut st = entry.lock();
                if let Some(ka) = keep_alive {
                    st.keep_alive = ka;
                }
                if let Some(model) = st.loaded.clone() {
                    let limit = self.cfg.slots + self.cfg.queue;
                    if st.in_flight >= limit {
                        self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                        let waiting = f64::from(st.in_flight + 1 - self.cfg.slots);
                        let secs = (waiting * st.avg_secs / f64::from(self.cfg.slots)).ceil();
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "server_error",
                            "queue_full",
                            None,
                            format!(
                                "model {name} is busy: {} requests running and {} queued, the most it takes (--slots {} + --queue {}); retry later",
                                st.in_flight.min(self.cfg.slots),
                                st.in_flight.saturating_sub(self.cfg.slots),
                                self.cfg.slots,
                                self.cfg.queue
                            ),
                        )
                        .retry_after(secs.clamp(1.0, 60.0) as u64));
                    }
                    st.in_flight += 1;
                    st.expires = None;
                    st.last_used = Instant::now();
                    let spec = entry.spec();
                    return Ok(self.lease(entry, spec, model, Duration::ZERO));
                }
            }
            let _guard = self.load_lock.lock().await;
            if entry.lock().loaded.is_some() {
                continue;
            }
            self.make_room(entry).await?;
            let started = Instant::now();
            let spec = entry.spec();
            let cfg = self.cfg.clone();
            let for_load = crate::served::LoadSpec {
                name: spec.name.clone(),
                path: spec.path.clone(),
                template: spec.template.clone(),
                digest: spec.digest.clone(),
                ctx_per_slot: spec.ctx_per_slot,
                backing: spec.backing.clone(),
            };
            let model = tokio::task::spawn_blocking(move || ServedModel::load(&for_load, &cfg))
                .await
                .map_err(|e| ApiError::internal("loading the model", e.to_string()))?
                .map_err(|e| ApiError::internal("loading the model", e.to_string()))?;
            self.stats.loads.fetch_add(1, Ordering::Relaxed);
            let model = Arc::new(model);
            let mut st = entry.lock();
            st.loaded = Some(model.clone());
            st.expires = None;
            st.in_flight += 1;
            st.last_used = Instant::now();
            return Ok(self.lease(entry, spec, model, started.elapsed()));
        }
    }

    /// Unloads idle models (least recently used first) until entry
    /// `index` fits in the budget, or says why it cannot.
    async fn make_room(&self, target: &Arc<Entry>) -> Result<(), ApiError> {
        let spec = target.spec();
        let need = spec.memory;
        let budget = self.cfg.memory_budget;
        let mib = |b: u64| b / (1024 * 1024);
        let name = &spec.name;
        if need.total() > budget {
            self.stats.memory_refused.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "server_error",
                "model_too_large",
                Some("model"),
                format!(
                    "model {name} needs {need}, more than the whole memory budget of {} MiB: raise --memory-budget, or lower --ctx-size or --slots",
                    mib(budget)
                ),
            ));
        }
        loop {
            let used = self.memory_used();
            if used + need.total() <= budget {
                return Ok(());
            }
            let victim = self
                .entries()
                .into_iter()
                .filter(|e| {
                    let st = e.lock();
                    !Arc::ptr_eq(e, target) && st.loaded.is_some() && st.in_flight == 0
                })
                .min_by_key(|e| e.lock().last_used);
            let Some(v) = victim else {
                self.stats.memory_refused.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    "memory_busy",
                    Some("model"),
                    format!(
                        "model {name} needs {need}; {} MiB of the {} MiB budget is held by models serving requests: retry when they finish, or raise --memory-budget",
                        mib(used),
                        mib(budget)
                    ),
                )
                .retry_after(5));
            };
            self.unload(&v).await;
        }
    }

    /// Unloads entry `index` if it is idle; true if it did.
    async fn unload(&self, entry: &Entry) -> bool {
        let model = {
            let mut st = entry.lock();
            if st.in_flight > 0 {
                return false;
            }
            st.expires = None;
            st.loaded.take()
        };
        let Some(model) = model else { return false };
        self.stats.unloads.fetch_add(1, Ordering::Relaxed);
        // Dropping the scheduler joins its worker thread.
        let _ = tokio::task::spawn_blocking(move || drop(model)).await;
        true
    }

    /// Unloads `name` now if it is idle (Ollama's `keep_alive: 0` with no
    /// prompt); with requests in flight it unloads when they end.
    pub async fn unload_now(&self, name: &str) -> Result<(), ApiError> {
        let entry = self.entry(name)?;
        entry.lock().keep_alive = KeepAlive::For(Duration::ZERO);
        let _guard = self.load_lock.lock().await;
        self.unload(&entry).await;
        Ok(())
    }

    /// Unloads every idle model whose keep-alive has run out.
    pub async fn reap(&self) {
        let now = Instant::now();
        let due: Vec<Arc<Entry>> = self
            .entries()
            .into_iter()
            .filter(|e| {
                let st = e.lock();
                st.loaded.is_some() && st.in_flight == 0 && st.expires.is_some_and(|t| t <= now)
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let _guard = self.load_lock.lock().await;
        for e in due {
            let still_due = {
                let st = e.lock();
                st.in_flight == 0 && st.expires.is_some_and(|t| t <= Instant::now())
            };
            if still_due {
                self.unload(&e).await;
            }
        }
    }

    /// Refuses new requests from now on.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Cancels every request in flight; returns how many.
    pub fn cancel_all(&self) -> usize {
        let mut n = 0;
        for e in &self.entries() {
            for c in e.lock().cancels.values() {
                c.cancel();
                n += 1;
            }
        }
        n
    }

    /// Unloads everything (at exit).
    pub async fn unload_all(&self) {
        for e in self.entries() {
            self.unload(&e).await;
        }
    }
}

/// A request's hold on a loaded model: the model stays loaded while any
/// lease lives, and the request's cancel token is reachable for shutdown.
pub struct Lease {
    entry: Arc<Entry>,
    spec: Arc<ModelSpec>,
    id: u64,
    model: Arc<ServedModel>,
    started: Instant,
    /// Time spent loading the model for this request.
    pub load_duration: Duration,
}

impl Lease {
    pub fn model(&self) -> &Arc<ServedModel> {
        &self.model
    }

    /// What is known of the model without loading it.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn spec_arc(&self) -> Arc<ModelSpec> {
        self.spec.clone()
    }

    /// Submits `req` to the model's scheduler, tracking its cancel token.
    pub fn submit(&self, req: GenerateRequest) -> Result<RequestHandle, ApiError> {
        let handle = self.model.scheduler()?.submit(req)?;
        self.entry
            .lock()
            .cancels
            .insert(self.id, handle.cancel.clone());
        Ok(handle)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut st = self.entry.lock();
        st.cancels.remove(&self.id);
        st.in_flight = st.in_flight.saturating_sub(1);
        let secs = self.started.elapsed().as_secs_f64();
        st.avg_secs = 0.8 * st.avg_secs + 0.2 * secs;
        st.last_used = Instant::now();
        if st.in_flight == 0 {
            st.expires = match st.keep_alive {
                KeepAlive::For(d) => Some(Instant::now() + d),
                KeepAlive::Forever => None,
            };
        }
    }
}
