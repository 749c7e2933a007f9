//! Acting on one model's assignment: verify the signed manifest, download
//! the variant, install it through the store's atomic pointer, run the
//! canary, revert locally when it fails. Every outcome is reported in the
//! telemetry spool (an `install` event, and a `canary` event per run).
//!
//! What the agent remembers between cycles lives in
//! `<store>/agent-state.json`: the last canary result per model (digest,
//! engine and app version: a new engine or app re-runs it) and the
//! manifests whose canary failed (not installed again until a new
//! manifest arrives).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use outpost_protocol::fleet::{Installed, ModelAssignment};
use outpost_protocol::telemetry::{
    Canary as CanaryEvent, EventData, Install, InstallOutcome, TelemetryEvent,
};
use outpost_protocol::{Digest, Manifest, ModelName, VerifyError};
use outpost_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::canary::{CanaryResult, CanaryRunner, CanarySet};
use crate::clock::now;
use crate::identity::{read_json, write_json};
use crate::{Agent, AgentError, Fetched, Profile};

/// What happened to one model in a cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutcome {
    pub model: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Already running what the manifest names.
    Unchanged { version: String },
    Installed {
        version: String,
        digest: Digest,
        fetched: Fetched,
    },
    /// Refused; the current model keeps serving. `code` is the short
    /// reason sent to the fleet.
    Rejected { code: &'static str, reason: String },
    /// Installed, failed its canary, put back to the previous version.
    Reverted { version: String, reason: String },
    /// The canary re-ran after an engine or app update and passed.
    CanaryPassed { version: String, detail: String },
    /// Not now (download conditions, an earlier canary failure).
    Waiting { reason: String },
    /// The fleet gives this device no release of the model.
    NoRelease { note: String },
}

impl ModelOutcome {
    /// Whether the active model changed (the server must reload).
    pub fn changed(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Installed { .. } | Outcome::Reverted { .. }
        )
    }
}

impl fmt::Display for ModelOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.model;
        match &self.outcome {
            Outcome::Unchanged { version } => {
                write!(f, "{m}: {version} is installed, nothing to do")
            }
            Outcome::Installed {
                version,
                digest,
                fetched,
            } => write!(
                f,
                "{m}: installed {version} ({digest}; {} bytes downloaded, {} resumed)",
                fetched.transferred, fetched.resumed_from
            ),
            Outcome::Rejected { code, reason } => {
                write!(
                    f,
                    "{m}: rejected ({code}): {reason}; the current model stays"
                )
            }
            Outcome::Reverted { version, reason } => {
                write!(
                    f,
                    "{m}: {version} failed its canary ({reason}); reverted to the previous version"
                )
            }
            Outcome::CanaryPassed { version, detail } => {
                write!(f, "{m}: canary re-run on {version} passed ({detail})")
            }
            Outcome::Waiting { reason } => write!(f, "{m}: waiting: {reason}"),
            Outcome::NoRelease { note } => write!(f, "{m}: no release for this device: {note}"),
        }
    }
}

/// What the agent remembers between cycles.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Last canary pass per model.
    #[serde(default)]
    canaries: BTreeMap<String, CanaryRecord>,
    /// Manifest payload digests whose canary failed, per model.
    #[serde(default)]
    failed: BTreeMap<String, Digest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CanaryRecord {
    digest: Digest,
    engine_version: String,
    app_version: String,
}

impl State {
    fn path(root: &Path) -> std::path::PathBuf {
        root.join("agent-state.json")
    }

    fn load(root: &Path) -> Result<State, AgentError> {
        Ok(read_json(
            &State::path(root),
            "the agent state",
            "remove it (canaries re-run)",
        )?
        .unwrap_or_default())
    }

    fn save(&self, root: &Path) -> Result<(), AgentError> {
        write_json(&State::path(root), self)
    }
}

/// What the store has active, for the check-in profile.
pub(crate) fn installed(store: &Store) -> Result<Vec<Installed>, AgentError> {
    let mut out = Vec::new();
    for (model, p) in store.models()? {
        let m = store.installed_manifest(&model, &p.active)?;
        out.push(Installed {
            model: model.clone(),
            model_version: m.as_ref().map_or_else(
                || "unknown".to_string(),
                |m| m.manifest.model_version.clone(),
            ),
            digest: p.active,
            manifest_version: m.map(|m| m.manifest.manifest_version),
        });
    }
    Ok(out)
}

/// The short code sent to the fleet for a refused manifest.
fn verify_code(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::OlderVersion { .. } => "older-version",
        VerifyError::Expired { .. } => "expired",
        VerifyError::SameVersionDifferentContent { .. } => "same-version-changed",
        VerifyError::UnknownKeyId { .. } => "unknown-key",
        VerifyError::WrongKey { .. } => "wrong-key",
        VerifyError::BadSignature { .. } => "bad-signature",
        _ => "bad-manifest",
    }
}

impl Agent {
    /// Puts an event about `m` (the manifest's release) in the spool.
    fn report(&self, m: &Manifest, data: EventData) -> Result<(), AgentError> {
        self.spool.push(&[TelemetryEvent {
            at: now(),
            model: m.model.clone(),
            model_version: m.model_version.clone(),
            model_digest: m.variant.digest,
            engine_version: self.cfg.engine.engine_version,
            app_version: self.cfg.engine.app_version,
            data,
        }])?;
        Ok(())
    }

    fn report_install(
        &self,
        m: &Manifest,
        outcome: InstallOutcome,
        code: Option<&str>,
    ) -> Result<(), AgentError> {
        self.report(
            m,
            EventData::Install(Install {
                outcome,
                reason: code.map(str::to_string),
            }),
        )
    }

    /// What a passing canary of `m` is remembered under, and what
    /// `recheck_canaries` compares with: a change in any field re-runs it.
    fn canary_record(&self, m: &Manifest) -> CanaryRecord {
        CanaryRecord {
            digest: m.variant.digest,
            engine_version: self.cfg.engine.engine_version.to_string(),
            app_version: self.cfg.engine.app_version.to_string(),
        }
    }

    /// The model file of `m`'s blob for a canary: the blob itself, or a
    /// sealed blob opened into memory with its kept key.
    fn open_for_canary(&self, m: &Manifest) -> Result<Opened, AgentError> {
        Ok(if m.encryption.is_some() {
            let mem = crate::sealed::open_installed(
                &self.store,
                &self.cfg.store_root,
                self.keys.as_ref(),
                &m.variant.digest,
            )?;
            // The child reads it by path: all of it must be in first.
            mem.wait_for(mem.len())?;
            Opened::Memory(mem)
        } else {
            Opened::Plain(self.store.blob_path(&m.variant.digest))
        })
    }

    /// Runs the canary of `m` on `model` and reports it; `None` when there
    /// is no canary to run.
    fn canary(&self, m: &Manifest, model: &Opened) -> Result<Option<Verdict>, AgentError> {
        let Some(runner) = &self.cfg.canary else {
            return Ok(None);
        };
        let Some(set) = CanarySet::of(m) else {
            return Ok(None);
        };
        // The child opens an in-memory model by the same /proc path: it
        // inherits the sealed memfd (never the key) while it runs.
        let (path, _inherit) = match model {
            Opened::Plain(p) => (p.clone(), None),
            Opened::Memory(mem) => (mem.path(), Some(mem.inherit()?)),
        };
        let r = runner.run(&path, set).unwrap_or_else(|e| {
            // A model that crashes or cannot load fails its canary.
            tracing::warn!(error = %e, "canary of {} {} could not run", m.model, m.model_version);
            CanaryResult::failed(set)
        });
        let pass = runner.passes(&r);
        let event = match r {
            CanaryResult::LogProbs { kld, same_top } => CanaryEvent {
                kld: Some(if kld.is_finite() { kld.max(0.0) } else { 1e9 }),
                same_top: Some(same_top.clamp(0.0, 1.0)),
                min_cosine: None,
                pass,
            },
            CanaryResult::Vectors { min_cosine } => CanaryEvent {
                kld: None,
                same_top: None,
                min_cosine: Some(if min_cosine.is_finite() {
                    min_cosine.clamp(-1.0, 1.0)
                } else {
                    -1.0
                }),
                pass,
            },
        };
        self.report(m, EventData::Canary(event))?;
        if pass {
            let mut st = State::load(&self.cfg.store_root)?;
            st.canaries
                .insert(m.model.to_string(), self.canary_record(m));
            st.save(&self.cfg.store_root)?;
        }
        Ok(Some(Verdict {
            pass,
            code: CanaryRunner::revert_code(&r),
            reason: runner.describe(&r),
        }))
    }
}

/// What a canary runs on.
enum Opened {
    Plain(std::path::PathBuf),
    /// A sealed blob's plaintext, in memory only.
    Memory(outpost_store::MemoryModel),
}

/// A canary run's result.
struct Verdict {
    pass: bool,
    /// The short reason sent to the fleet on a revert.
    code: &'static str,
    /// What was measured against which limit.
    reason: String,
}

/// Acts on one assignment.
pub(crate) fn apply(
    agent: &Agent,
    profile: &Profile,
    a: &ModelAssignment,
) -> Result<ModelOutcome, AgentError> {
    let out = |outcome| ModelOutcome {
        model: a.model.to_string(),
        outcome,
    };
    let Some(signed) = &a.manifest else {
        let mut note = a.note.clone().unwrap_or_else(|| "none assigned".into());
        if !a.blocked.is_empty() {
            note = format!(
                "{note} ({} release(s) blocked for this device)",
                a.blocked.len()
            );
        }
        return Ok(out(Outcome::NoRelease { note }));
    };
    let envelope = signed.to_json();
    let store = &agent.store;
    let verified = match store.accept_manifest(&envelope, &agent.cfg.keyring, now()) {
        Ok(v) => v,
        Err(StoreError::Manifest(e)) => {
            let code = verify_code(&e);
            // The manifest is untrusted: report it under the installed release.
            if let Some(current) = active_manifest(store, &a.model)? {
                agent.report_install(&current, InstallOutcome::Rejected, Some(code))?;
            }
            return Ok(out(Outcome::Rejected {
                code,
                reason: e.to_string(),
            }));
        }
        Err(e) => return Err(e.into()),
    };
    let m = verified.manifest;
    let digest = m.variant.digest;
    let version = m.model_version.clone();
    // Refused after verification: reported under this manifest's release.
    let reject = |code: &'static str, reason: String| {
        agent.report_install(&m, InstallOutcome::Rejected, Some(code))?;
        Ok(out(Outcome::Rejected { code, reason }))
    };
    if store.active(&m.model)?.map(|p| p.active) == Some(digest) {
        if store.installed_manifest(&m.model, &digest)?.is_none() {
            store.record_installed(&m.model, &digest, &envelope)?;
        }
        return Ok(out(Outcome::Unchanged { version }));
    }
    let st = State::load(&agent.cfg.store_root)?;
    if st.failed.get(m.model.as_str()) == Some(&verified.payload_digest) {
        return Ok(out(Outcome::Waiting {
            reason: format!(
                "{version} (manifest {}) failed its canary here; waiting for a new manifest",
                m.manifest_version
            ),
        }));
    }
    let mut fetched = Fetched::default();
    if !store.contains(&digest) {
        if agent.cfg.require_unmetered && !profile.unmetered {
            return Ok(out(Outcome::Waiting {
                reason: format!("{version} downloads only on an unmetered network"),
            }));
        }
        if agent.cfg.require_charging && profile.charging != Some(true) {
            return Ok(out(Outcome::Waiting {
                reason: format!("{version} downloads only while charging"),
            }));
        }
        fetched = match agent
            .client
            .download(store, &m.model, &digest, m.variant.length)
        {
            Ok(f) => f,
            Err(e @ AgentError::Download { .. }) => {
                return reject("download-mismatch", e.to_string());
            }
            Err(AgentError::Store(
                e @ (StoreError::HashMismatch { .. } | StoreError::LengthMismatch { .. }),
            )) => return reject("hash-mismatch", e.to_string()),
            Err(e) => return Err(e),
        };
    } else {
        // Present from before (a rollback target): check it is intact.
        if let Err(e) = store.verify(&digest) {
            return reject("corrupt-blob", e.to_string());
        }
    }
    // A sealed blob is opened (its key from the fleet, every chunk and the
    // plaintext checked) before it becomes active; a refusal keeps the
    // installed model.
    let opened = match &m.encryption {
        Some(enc) => match agent.unseal(&m, enc)? {
            Ok(mem) => Opened::Memory(mem),
            Err(r) => return reject(r.code, r.reason),
        },
        None => Opened::Plain(store.blob_path(&digest)),
    };
    store.record_installed(&m.model, &digest, &envelope)?;
    store.activate(&m.model, &digest)?;
    if let Some(Verdict {
        pass: false,
        code,
        reason,
    }) = agent.canary(&m, &opened)?
    {
        match store.rollback(&m.model) {
            Ok(_) => {}
            Err(StoreError::NoPrevious { .. }) => {
                tracing::warn!(
                    "{}: no previous version to revert to; {version} stays active",
                    m.model
                )
            }
            Err(e) => return Err(e.into()),
        }
        let mut st = State::load(&agent.cfg.store_root)?;
        st.failed
            .insert(m.model.to_string(), verified.payload_digest);
        st.save(&agent.cfg.store_root)?;
        agent.report_install(&m, InstallOutcome::Reverted, Some(code))?;
        return Ok(out(Outcome::Reverted { version, reason }));
    }
    drop(opened);
    agent.report_install(&m, InstallOutcome::Installed, None)?;
    store.gc(&[])?;
    crate::sealed::prune(store, &agent.cfg.store_root);
    Ok(out(Outcome::Installed {
        version,
        digest,
        fetched,
    }))
}

/// The manifest the active blob of `model` was installed by.
fn active_manifest(store: &Store, model: &ModelName) -> Result<Option<Manifest>, AgentError> {
    let Some(p) = store.active(model)? else {
        return Ok(None);
    };
    Ok(store
        .installed_manifest(model, &p.active)?
        .map(|s| s.manifest))
}

/// Re-runs the canary of active models whose last pass was under another
/// engine or app version (or never ran), and reverts the ones that fail.
pub(crate) fn recheck_canaries(
    agent: &Agent,
    assignments: &[ModelAssignment],
) -> Result<Vec<ModelOutcome>, AgentError> {
    let mut out = Vec::new();
    if agent.cfg.canary.is_none() {
        return Ok(out);
    }
    for a in assignments {
        let Some(m) = active_manifest(&agent.store, &a.model)? else {
            continue;
        };
        let st = State::load(&agent.cfg.store_root)?;
        if st.canaries.get(m.model.as_str()) == Some(&agent.canary_record(&m))
            || CanarySet::of(&m).is_none()
        {
            continue;
        }
        let opened = agent.open_for_canary(&m)?;
        let outcome = match agent.canary(&m, &opened)? {
            None => continue,
            Some(Verdict {
                pass: true, reason, ..
            }) => Outcome::CanaryPassed {
                version: m.model_version.clone(),
                detail: reason,
            },
            Some(Verdict { code, reason, .. }) => match agent.store.rollback(&m.model) {
                Ok(_) => {
                    agent.report_install(&m, InstallOutcome::Reverted, Some(code))?;
                    Outcome::Reverted {
                        version: m.model_version.clone(),
                        reason,
                    }
                }
                Err(_) => Outcome::Waiting {
                    reason: format!(
                        "{} fails its canary ({reason}) and there is nothing to revert to",
                        m.model_version
                    ),
                },
            },
        };
        out.push(ModelOutcome {
            model: a.model.to_string(),
            outcome,
        });
    }
    Ok(out)
}
