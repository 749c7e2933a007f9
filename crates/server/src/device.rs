//! `outpost serve --store DIR`: serving what a device store has active.
//! The contract with the device agent (which owns the store):
//!
//! - The server serves every model with an active pointer in the store,
//!   under the model's name, from its blob. It never writes the store.
//! - `POST /admin/reload` (or SIGHUP) re-reads the pointers. A model whose
//!   active blob changed gets the new file for new requests; requests in
//!   flight finish on the old one (nothing is dropped). A blob whose hash
//!   does not match its pointer is refused and the old file kept.
//! - Every finished request appends an `inference` event (TTFT, latency,
//!   tokens, tok/s, cached tokens; never text) to the store's telemetry
//!   spool, tagged with the release the store installed; the agent ships
//!   the spool to the fleet. An embedding request appends an `embedding`
//!   event (inputs, tokens, latency) instead.
//! - A sealed blob (its manifest has `encryption`, #23) is opened into
//!   memory only by the [`Unsealer`] the caller gives (the CLI's opens it
//!   with the key the agent kept, wrapped to the device key), in the
//!   background: the header is read and llama.cpp parses the metadata
//!   while the weights are still being opened. It is not hashed again:
//!   every chunk is authenticated under the release's key, and the agent
//!   checked the whole plaintext against `plaintext_digest` at install.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use outpost_engine::ChatTemplate;
use outpost_protocol::manifest::Version;
use outpost_protocol::telemetry::{EventData, TelemetryEvent};
use outpost_protocol::{Digest, ModelName, Timestamp};
use outpost_store::spool::{Spool, DEFAULT_MAX_EVENTS};
use outpost_store::{MemoryModel, Store};

use crate::error::ServerError;
use crate::registry::ModelSpec;
use crate::served::ServerConfig;

/// Opens a sealed blob of the store into memory.
pub trait Unsealer: Send + Sync {
    /// The plaintext of the blob `digest`, or why it cannot be opened.
    fn open(&self, digest: &Digest) -> Result<MemoryModel, String>;
}

/// The store a server follows, and its spool.
pub struct StoreLink {
    root: PathBuf,
    unsealer: Option<Box<dyn Unsealer>>,
    templates: HashMap<String, Arc<ChatTemplate>>,
    spool: Spool,
    app_version: Version,
    engine_version: Version,
    spool_failed: AtomicBool,
}

impl StoreLink {
    /// Opens the store at `root` for reading and its spool for appending.
    /// `templates`: chat templates by model name, for models without one.
    pub fn open(
        root: &Path,
        templates: HashMap<String, Arc<ChatTemplate>>,
        app_version: Version,
        engine_version: Version,
    ) -> Result<StoreLink, ServerError> {
        let store = Store::open_reader(root)?;
        let spool = Spool::open(&store.spool_path(), DEFAULT_MAX_EVENTS)?;
        Ok(StoreLink {
            root: root.to_path_buf(),
            unsealer: None,
            templates,
            spool,
            app_version,
            engine_version,
            spool_failed: AtomicBool::new(false),
        })
    }

    /// Sealed blobs are opened with `unsealer`; without one they are
    /// refused by name.
    pub fn with_unsealer(mut self, unsealer: Box<dyn Unsealer>) -> StoreLink {
        self.unsealer = Some(unsealer);
        self
    }

    /// One spec per active model whose blob is not among `known` (name →
    /// store digest of the spec served now). Each file is hashed and must
    /// match its pointer.
    pub fn specs(
        &self,
        cfg: &ServerConfig,
        known: &HashMap<String, outpost_protocol::Digest>,
    ) -> Result<Vec<ModelSpec>, ServerError> {
        let store = Store::open_reader(&self.root)?;
        let mut out = Vec::new();
        for (model, pointer) in store.models()? {
            let name = model.to_string();
            if known.get(&name) == Some(&pointer.active) {
                continue;
            }
            let manifest = store
                .installed_manifest(&model, &pointer.active)?
                .map(|m| m.manifest);
            let sealed = manifest.as_ref().and_then(|m| m.encryption.as_ref());
            let template = self.templates.get(&name).cloned();
            let in_store = |e| ServerError::InStore {
                model: name.clone(),
                inner: Box::new(e),
            };
            let mut spec = match sealed {
                None => {
                    let spec =
                        ModelSpec::inspect(&name, &store.blob_path(&pointer.active), template, cfg)
                            .map_err(in_store)?;
                    if spec.digest != pointer.active.to_string() {
                        return Err(ServerError::Damaged {
                            model: name,
                            pointer: pointer.active.to_string(),
                            actual: spec.digest,
                        });
                    }
                    spec
                }
                Some(enc) => {
                    let unsealer = self.unsealer.as_ref().ok_or_else(|| ServerError::Sealed {
                        model: name.clone(),
                        problem: "this server was started without the device's keys".into(),
                    })?;
                    let mem =
                        unsealer
                            .open(&pointer.active)
                            .map_err(|problem| ServerError::Sealed {
                                model: name.clone(),
                                problem,
                            })?;
                    ModelSpec::inspect_sealed(
                        &name,
                        Arc::new(mem),
                        enc.plaintext_digest,
                        template,
                        cfg,
                    )
                    .map_err(in_store)?
                }
            };
            let version = manifest.map_or_else(|| "unknown".to_string(), |m| m.model_version);
            spec.release = Some((version, pointer.active));
            out.push(spec);
        }
        Ok(out)
    }

    /// Appends one event about the release `spec` is; a failing spool is
    /// said once on stderr and never fails the request.
    pub fn record(&self, spec: &ModelSpec, data: EventData) {
        let Some((version, digest)) = &spec.release else {
            return;
        };
        let Ok(model) = ModelName::parse(&spec.name) else {
            return;
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ev = TelemetryEvent {
            at: Timestamp::from_unix_seconds(secs),
            model,
            model_version: version.clone(),
            model_digest: *digest,
            engine_version: self.engine_version,
            app_version: self.app_version,
            data,
        };
        if let Err(e) = self.spool.push(&[ev]) {
            if !self.spool_failed.swap(true, Ordering::Relaxed) {
                tracing::error!(error = %e, "telemetry spool: writing failed (said once; requests go on)");
            }
        }
    }
}
