//! The one definition of Outpost's Kotlin, Swift and Python API (UniFFI,
//! proc-macro mode): `cargo run -p xtask --bin outpost-bindgen -- generate
//! --library target/release/liboutpost_ffi.so --language python|kotlin|swift
//! --out-dir DIR` writes the bindings. Objects are reference counted and
//! thread-safe; errors arrive as `OutpostError.Failed(reason)`; a
//! generation streams through a `PieceSink` the caller implements, which
//! each language's layer turns into its idiom: a Python iterator
//! (`python/outpost/stream.py`, in the wheel), a Kotlin `Flow`
//! (`kotlin/OutpostFlow.kt`), a Swift `AsyncThrowingStream`
//! (`swift/OutpostStream.swift`).
//!
//! Besides models and the guard it carries the device agent as a library:
//! the app opens it on a store, supplies the conditions (battery, network)
//! and drives the check-ins itself, then opens what was installed (a
//! sealed model straight into memory).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use outpost_agent::{Agent, AgentConfig, Conditions, EngineFacts, ModelFile};
use outpost_engine::gguf::Arrival;
use outpost_engine::{CancelToken, LoadOptions, Model, Prompt};
use outpost_guard::{redact, Action, Region, Restorer, Scanner, Vault};
use outpost_protocol::manifest::Version;
use outpost_protocol::signing::PinnedKey;
use outpost_protocol::{Keyring, ModelName};

use crate::generation::{generate, Settings};

/// Every failure, with what was wrong and what to do. (The field is not
/// called `message`: Kotlin's generated exception would then have two.)
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum OutpostError {
    #[error("{reason}")]
    Failed { reason: String },
}

fn failed(reason: impl ToString) -> OutpostError {
    OutpostError::Failed {
        reason: reason.to_string(),
    }
}

/// How to generate; 0 in a number means its default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct GenerateOptions {
    /// Most tokens (default 256).
    #[uniffi(default = 0)]
    pub max_tokens: u32,
    /// Always the most likely token.
    #[uniffi(default = false)]
    pub greedy: bool,
    #[uniffi(default = 0.8)]
    pub temperature: f32,
    /// CPU threads (default: the engine's choice).
    #[uniffi(default = 0)]
    pub threads: u32,
    /// Sampling seed (0: random).
    #[uniffi(default = 0)]
    pub seed: u32,
}

impl GenerateOptions {
    fn settings(&self) -> Settings {
        Settings {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            greedy: self.greedy,
            threads: self.threads,
            n_ctx: 0,
            seed: self.seed,
        }
    }
}

/// What a generation gave.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Generated {
    pub text: String,
    /// It stopped early: a `CancelFlag`, or the sink returned false.
    pub cancelled: bool,
}

/// One chat turn (also an element of the C ABI's `messages_json`).
#[derive(Debug, Clone, uniffi::Record, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// Receives each piece of text as it becomes final; return false to stop.
/// Called on the generating thread.
#[uniffi::export(callback_interface)]
pub trait PieceSink: Send + Sync {
    fn piece(&self, text: String) -> bool;
}

/// A cancel flag, set from any thread.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelFlag(CancelToken);

#[uniffi::export]
impl CancelFlag {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(CancelFlag::default())
    }

    /// Generations given this flag stop at their next token.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// A loaded model; generations may run on several threads at once.
#[derive(uniffi::Object)]
pub struct LocalModel {
    model: Arc<Model>,
    /// Started on the first `embed` (embedding models only).
    embedder: crate::embedding::LazyEmbedder,
    /// A sealed model's in-memory plaintext, which the model was loaded
    /// from.
    _backing: Option<Arc<outpost_store::MemoryModel>>,
}

#[uniffi::export]
impl LocalModel {
    /// Loads the GGUF file at `path`.
    #[uniffi::constructor]
    pub fn open(path: String) -> Result<Arc<Self>, OutpostError> {
        let model =
            Model::load(std::path::Path::new(&path), &LoadOptions::default()).map_err(failed)?;
        Ok(Arc::new(LocalModel::new(model, None)))
    }

    /// Completes `prompt` (plain text).
    #[uniffi::method(default(cancel = None, sink = None))]
    pub fn generate(
        &self,
        prompt: String,
        options: GenerateOptions,
        cancel: Option<Arc<CancelFlag>>,
        sink: Option<Box<dyn PieceSink>>,
    ) -> Result<Generated, OutpostError> {
        self.run(Prompt::Text(prompt), &options, cancel, sink)
    }

    /// The vectors of `texts`, in order (embedding models such as
    /// all-MiniLM-L6-v2; a model that generates is refused by name).
    pub fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, OutpostError> {
        self.embed_texts(&texts).map_err(failed)
    }

    /// Answers `messages` with the model's own chat template.
    #[uniffi::method(default(cancel = None, sink = None))]
    pub fn chat(
        &self,
        messages: Vec<ChatMessage>,
        options: GenerateOptions,
        cancel: Option<Arc<CancelFlag>>,
        sink: Option<Box<dyn PieceSink>>,
    ) -> Result<Generated, OutpostError> {
        let prompt = crate::generation::chat_prompt(
            messages.into_iter().map(|m| (m.role, m.content)).collect(),
        )
        .map_err(|e| failed(format!("messages {e}")))?;
        self.run(prompt, &options, cancel, sink)
    }
}

impl LocalModel {
    fn new(model: Model, backing: Option<Arc<outpost_store::MemoryModel>>) -> LocalModel {
        let model = Arc::new(model);
        LocalModel {
            embedder: crate::embedding::LazyEmbedder::new(model.clone()),
            model,
            _backing: backing,
        }
    }

    /// The vectors of `texts`, in order (`embedding.rs`).
    pub(crate) fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        self.embedder.embed(texts)
    }

    /// The engine's model.
    pub(crate) fn engine(&self) -> &Model {
        &self.model
    }

    fn run(
        &self,
        prompt: Prompt,
        options: &GenerateOptions,
        cancel: Option<Arc<CancelFlag>>,
        sink: Option<Box<dyn PieceSink>>,
    ) -> Result<Generated, OutpostError> {
        let outside = cancel.as_ref().map(|c| &c.0);
        let (text, cancelled) = generate(&self.model, prompt, &options.settings(), outside, |p| {
            sink.as_ref().is_none_or(|s| s.piece(p.to_string()))
        })
        .map_err(failed)?;
        Ok(Generated { text, cancelled })
    }
}

/// A piece of personal data found in a text.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Finding {
    /// e.g. `EMAIL_ADDRESS`, `CREDIT_CARD`, `PHONE_NUMBER`.
    pub entity: String,
    /// Unicode character offsets, end exclusive.
    pub start: u64,
    pub end: u64,
    pub score: f32,
}

/// The on-device PII guard; thread-safe.
#[derive(uniffi::Object)]
pub struct PiiGuard(Scanner);

#[uniffi::export]
impl PiiGuard {
    /// Reads national phone numbers of `regions` (comma separated CLDR
    /// codes such as "US,GB"; empty: the device locale's, else US).
    #[uniffi::constructor]
    pub fn new(regions: String) -> Result<Arc<Self>, OutpostError> {
        if regions.trim().is_empty() {
            return Ok(Arc::new(PiiGuard(Scanner::new())));
        }
        let parsed = regions
            .split(',')
            .map(|c| c.parse::<Region>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed(format!("regions {regions:?}: {e}")))?;
        Ok(Arc::new(PiiGuard(Scanner::with_regions(parsed))))
    }

    pub fn scan(&self, text: String) -> Vec<Finding> {
        self.0
            .scan(&text)
            .into_iter()
            .map(|f| Finding {
                entity: f.entity.name().to_string(),
                start: f.start as u64,
                end: f.end as u64,
                score: f.score,
            })
            .collect()
    }

    /// `text` with every finding replaced by a placeholder such as
    /// `<EMAIL_ADDRESS_1>`.
    pub fn redact(&self, text: String) -> Result<Arc<Redaction>, OutpostError> {
        let mut vault = Vault::new();
        let red = redact(&self.0, &text, &Action::Placeholder, &mut vault).map_err(failed)?;
        Ok(Arc::new(Redaction {
            text: red.into_inner(),
            vault,
        }))
    }
}

/// A redacted text and the originals behind its placeholders.
#[derive(uniffi::Object)]
pub struct Redaction {
    text: String,
    vault: Vault,
}

#[uniffi::export]
impl Redaction {
    pub fn text(&self) -> String {
        self.text.clone()
    }

    /// `answer` with this redaction's placeholders put back.
    pub fn restore(&self, answer: String) -> String {
        let mut r = Restorer::new(&self.vault);
        let mut out = r.push(answer.as_bytes());
        out.push_str(&r.finish());
        out
    }
}

/// How the embedded agent reaches its fleet and keeps its store (also
/// the C ABI's `outpost_agent_open` JSON).
#[derive(Debug, Clone, uniffi::Record, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    pub fleet_url: String,
    /// The model store (created if missing); the device identity lives there.
    pub store_dir: String,
    /// The app key, for the first check-in (registration).
    #[uniffi(default = None)]
    #[serde(default)]
    pub app_key: Option<String>,
    /// The fleet's signing keys to trust: the contents of its
    /// `signing.pub.json` files.
    pub pinned_keys: Vec<String>,
    #[uniffi(default = None)]
    #[serde(default)]
    pub channel: Option<String>,
    /// The device class the fleet assigns by (e.g. `phone-8gb`).
    #[uniffi(default = None)]
    #[serde(default)]
    pub device_class: Option<String>,
    /// The app's version (`MAJOR.MINOR.PATCH`).
    pub app_version: String,
    /// Download only on an unmetered network / while charging, as the
    /// conditions given to `check_in` say.
    #[uniffi(default = false)]
    #[serde(default)]
    pub require_unmetered: bool,
    #[uniffi(default = false)]
    #[serde(default)]
    pub require_charging: bool,
    /// `file` (default) or `kernel-keyring`.
    #[uniffi(default = None)]
    #[serde(default)]
    pub device_key_store: Option<String>,
    /// Run each install's quality canary in this process (default); a
    /// model that fails it is put back to the previous version and the
    /// fleet told why.
    #[uniffi(default = true)]
    #[serde(default = "yes")]
    pub run_canary: bool,
    /// CPU threads for the canary (0: the engine's choice).
    #[uniffi(default = 0)]
    #[serde(default)]
    pub canary_threads: u32,
}

fn yes() -> bool {
    true
}

/// The device's conditions as the app sees them; `None` keeps the last.
#[derive(Debug, Clone, Default, uniffi::Record, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConditions {
    #[uniffi(default = None)]
    pub battery_pct: Option<u8>,
    #[uniffi(default = None)]
    pub charging: Option<bool>,
    #[uniffi(default = None)]
    pub unmetered: Option<bool>,
    #[uniffi(default = None)]
    pub temperature_c: Option<f64>,
    #[uniffi(default = None)]
    pub free_disk_bytes: Option<u64>,
}

/// What a check-in did.
#[derive(Debug, Clone, uniffi::Record, serde::Serialize)]
pub struct CheckInReport {
    pub device_id: String,
    /// When the fleet wants the next one.
    pub next_check_in_s: u64,
    /// One line per model, e.g. `smollm2-135m: installed 1.0.0 (...)`.
    pub outcomes: Vec<String>,
    /// An active model changed: reopen it.
    pub changed: bool,
    pub telemetry_sent: u64,
}

/// An installed model.
#[derive(Debug, Clone, uniffi::Record, serde::Serialize)]
pub struct InstalledModel {
    pub model: String,
    pub version: String,
    pub digest: String,
}

/// The device agent inside the app: the app calls `check_in` when it
/// chooses (no background process). Thread-safe (one check-in at a time).
#[derive(uniffi::Object)]
pub struct DeviceAgent(Mutex<Agent>);

#[uniffi::export]
impl DeviceAgent {
    /// Opens the store; registers the device on first use.
    #[uniffi::constructor]
    pub fn open(settings: AgentSettings) -> Result<Arc<Self>, OutpostError> {
        let mut pinned = Vec::new();
        for (i, k) in settings.pinned_keys.iter().enumerate() {
            pinned.push(serde_json::from_str::<PinnedKey>(k).map_err(|e| {
                failed(format!("pinned_keys[{i}] is not a signing key file ({{\"key_id\", \"public_key\"}}): {e}"))
            })?);
        }
        let keyring = Keyring::from_pinned(&pinned).map_err(failed)?;
        let app_version = Version::parse(&settings.app_version)
            .map_err(|e| failed(format!("app_version {:?}: {e}", settings.app_version)))?;
        let engine_version = Version::parse(env!("CARGO_PKG_VERSION")).map_err(failed)?;
        let device_key_store = settings
            .device_key_store
            .as_deref()
            .unwrap_or("file")
            .parse()
            .map_err(failed)?;
        let mut overrides = outpost_agent::Overrides::default();
        overrides.device_class = settings.device_class.clone();
        let cfg = AgentConfig {
            fleet_url: settings.fleet_url.trim_end_matches('/').to_string(),
            app_key: settings.app_key.clone(),
            channel: settings.channel.clone(),
            store_root: PathBuf::from(&settings.store_dir),
            budget_bytes: None,
            keyring,
            overrides,
            engine: EngineFacts {
                app_version,
                engine_version,
                ggml_types: outpost_engine::gguf::ggml_type_names(),
            },
            bandwidth_cap: None,
            require_unmetered: settings.require_unmetered,
            require_charging: settings.require_charging,
            canary: settings.run_canary.then(|| outpost_agent::CanaryRunner {
                how: outpost_agent::CanaryHow::InProcess(Arc::new(crate::canary::InProcess {
                    threads: (settings.canary_threads > 0).then_some(settings.canary_threads),
                })),
                max_kld: outpost_agent::canary::DEFAULT_MAX_KLD,
                min_cosine: outpost_agent::canary::DEFAULT_MIN_COSINE,
            }),
            reload_url: None,
            spool_max_events: outpost_store::spool::DEFAULT_MAX_EVENTS,
            batch_size: 500,
            backoff: (
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(300),
            ),
            max_interval: None,
            device_key_store,
        };
        Ok(Arc::new(DeviceAgent(Mutex::new(
            Agent::open(cfg).map_err(failed)?,
        ))))
    }

    /// One check-in under `conditions`: install what the fleet assigns
    /// (verified; sealed models opened into memory), ship telemetry.
    pub fn check_in(&self, conditions: DeviceConditions) -> Result<CheckInReport, OutpostError> {
        let mut agent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        agent.set_conditions(Conditions {
            battery_pct: conditions.battery_pct,
            charging: conditions.charging,
            unmetered: conditions.unmetered,
            temperature_c: conditions.temperature_c,
            free_disk_bytes: conditions.free_disk_bytes,
        });
        let c = agent.run_once().map_err(failed)?;
        Ok(CheckInReport {
            device_id: c.device_id,
            next_check_in_s: c.next_check_in.as_secs(),
            changed: c.models.iter().any(|m| m.changed()),
            outcomes: c.models.iter().map(ToString::to_string).collect(),
            telemetry_sent: c.telemetry_sent,
        })
    }

    /// What is installed and active.
    pub fn installed(&self) -> Result<Vec<InstalledModel>, OutpostError> {
        let agent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Ok(agent
            .installed()
            .map_err(failed)?
            .into_iter()
            .map(|i| InstalledModel {
                model: i.model.to_string(),
                version: i.model_version,
                digest: i.digest.to_string(),
            })
            .collect())
    }

    /// Records one request the app ran on `model` (its installed release)
    /// in the telemetry spool: time to first token, whole latency, tokens
    /// generated. Never any text.
    pub fn record_inference(
        &self,
        model: String,
        ttft_ms: f64,
        latency_ms: f64,
        tokens: u32,
    ) -> Result<(), OutpostError> {
        let name = ModelName::parse(&model).map_err(failed)?;
        if !(ttft_ms.is_finite()
            && latency_ms.is_finite()
            && ttft_ms >= 0.0
            && latency_ms >= ttft_ms)
        {
            return Err(failed(format!(
                "ttft_ms {ttft_ms} and latency_ms {latency_ms}: give finite milliseconds with 0 <= ttft <= latency"
            )));
        }
        let decode_s = (latency_ms - ttft_ms) / 1e3;
        let data = outpost_protocol::telemetry::EventData::Inference(
            outpost_protocol::telemetry::Inference {
                ttft_ms,
                latency_ms,
                tokens,
                tok_s: if decode_s > 0.0 {
                    f64::from(tokens) / decode_s
                } else {
                    0.0
                },
                cached_tokens: 0,
                error: None,
            },
        );
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(&name, data)
            .map_err(failed)
    }

    /// Sends the spooled telemetry now (a check-in also does); returns how
    /// many events went.
    pub fn flush_telemetry(&self) -> Result<u64, OutpostError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush_telemetry()
            .map_err(failed)
    }

    /// Loads the active version of `model` (a sealed one from memory only).
    pub fn open_model(&self, model: String) -> Result<Arc<LocalModel>, OutpostError> {
        let name = ModelName::parse(&model).map_err(failed)?;
        let file = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .model_file(&name)
            .map_err(failed)?;
        let (path, backing) = match file {
            ModelFile::Plain(p) => (p, None),
            ModelFile::Sealed(m) => (m.path(), Some(Arc::new(m))),
        };
        let opts = LoadOptions {
            mlock: backing.is_some(),
            arrival: backing.as_ref().map(|m| {
                let m = m.clone();
                Arrival::new(move |n| m.wait_for(n).map_err(|e| e.to_string()))
            }),
            ..LoadOptions::default()
        };
        let model = Model::load(&path, &opts).map_err(failed)?;
        Ok(Arc::new(LocalModel::new(model, backing)))
    }
}
