//! The device agent: keeps one device in line with the fleet. It profiles
//! the device, checks in, downloads what its signed manifests name
//! (resumably, within a bandwidth cap and download conditions), verifies
//! signature, version, expiry, length and hash, installs through the
//! store's atomic pointer (the previous version kept), runs the quality
//! canary in a child process, reverts locally when it fails, tells the
//! local `outpost serve` to reload, and ships the telemetry spool in
//! batches. It does not link the engine: it keeps working when inference
//! crashes.
//!
//! ```no_run
//! # use outpost_agent::{Agent, AgentConfig};
//! # fn cfg() -> AgentConfig { unimplemented!() }
//! let mut agent = Agent::open(cfg())?;
//! let cycle = agent.run_once()?;
//! for m in &cycle.models {
//!     println!("{m}");
//! }
//! # Ok::<(), outpost_agent::AgentError>(())
//! ```

pub mod canary;
mod client;
mod clock;
pub mod device_key;
mod error;
mod identity;
mod install;
pub mod profile;
pub mod sealed;
mod upload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use outpost_protocol::Keyring;
use outpost_store::spool::Spool;
use outpost_store::{Store, StoreConfig};

pub use canary::{CanaryHow, CanaryProbe, CanaryResult, CanaryRunner, CanarySet};
pub use client::{Fetched, FleetClient};
pub use error::AgentError;
pub use identity::Identity;
pub use install::{ModelOutcome, Outcome};
pub use profile::{EngineFacts, Overrides, Profile};

/// Everything the agent needs; the CLI fills it from flags.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The fleet's base URL, e.g. `http://127.0.0.1:8700`.
    pub fleet_url: String,
    /// The app key to register with (first start only).
    pub app_key: Option<String>,
    /// Channel to register on (default: the fleet's, `stable`).
    pub channel: Option<String>,
    /// The model store (shared with `outpost serve --store`).
    pub store_root: PathBuf,
    /// Disk budget for the store.
    pub budget_bytes: Option<u64>,
    /// Keys manifests must be signed with.
    pub keyring: Keyring,
    pub overrides: Overrides,
    pub engine: EngineFacts,
    /// Most bytes per second a download may take.
    pub bandwidth_cap: Option<u64>,
    /// Download only on an unmetered network / while charging.
    pub require_unmetered: bool,
    pub require_charging: bool,
    /// `None`: no canary (installs are trusted on hash and signature).
    pub canary: Option<CanaryRunner>,
    /// The local server's reload endpoint (`POST`), called after a change.
    pub reload_url: Option<String>,
    /// Bound of the telemetry spool.
    pub spool_max_events: u64,
    /// Events per telemetry batch.
    pub batch_size: usize,
    /// Shortest and longest wait between failed check-ins.
    pub backoff: (Duration, Duration),
    /// Check in at least this often, whatever the fleet says.
    pub max_interval: Option<Duration>,
    /// Where the device's X25519 key (for sealed models) is kept.
    pub device_key_store: device_key::KeyStoreKind,
}

/// The device's conditions an app supplies ([`Agent::set_conditions`]);
/// `None` keeps what was configured or detected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    pub battery_pct: Option<u8>,
    pub charging: Option<bool>,
    pub unmetered: Option<bool>,
    pub temperature_c: Option<f64>,
    pub free_disk_bytes: Option<u64>,
}

/// An installed model's file ([`Agent::model_file`]).
#[derive(Debug)]
pub enum ModelFile {
    Plain(PathBuf),
    /// A sealed model's plaintext, in memory only.
    Sealed(outpost_store::MemoryModel),
}

/// What one check-in cycle did.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub device_id: String,
    /// When the fleet wants the next check-in.
    pub next_check_in: Duration,
    pub models: Vec<ModelOutcome>,
    /// Telemetry events delivered in this cycle.
    pub telemetry_sent: u64,
}

/// The agent of one device.
pub struct Agent {
    cfg: AgentConfig,
    store: Store,
    spool: Spool,
    client: FleetClient,
    identity: Identity,
    keys: Box<dyn device_key::DeviceKeyStore + Send + Sync>,
}

impl Agent {
    /// Opens the store and the spool, and registers the device if this
    /// store has no identity yet.
    pub fn open(cfg: AgentConfig) -> Result<Agent, AgentError> {
        let store = Store::open(
            &cfg.store_root,
            StoreConfig {
                budget_bytes: cfg.budget_bytes,
            },
        )?;
        let spool = Spool::open(&store.spool_path(), cfg.spool_max_events)?;
        let keys = cfg.device_key_store.open(&cfg.store_root);
        let identity = match Identity::load(&cfg.store_root)? {
            Some(id) if id.fleet_url == cfg.fleet_url => id,
            Some(id) => {
                return Err(AgentError::Config {
                    what: format!("the identity in {}", Identity::path(&cfg.store_root).display()),
                    problem: format!(
                        "it belongs to the fleet at {}, not {}: use that fleet, or remove the file to register with this one",
                        id.fleet_url, cfg.fleet_url
                    ),
                })
            }
            None => {
                let key = cfg.app_key.clone().ok_or_else(|| AgentError::Config {
                    what: "registration".into(),
                    problem: "this store has no device identity yet, and no app key was given: pass --app-key (the fleet's data folder has app.key)".into(),
                })?;
                // The key pair for sealed models first: a device that
                // registered without one is never sent a sealed manifest.
                let public = device_key::ensure(keys.as_ref())?;
                let reg = FleetClient::new(&cfg.fleet_url, None).register(
                    &key,
                    cfg.channel.clone(),
                    Some(base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        public.0,
                    )),
                )?;
                let id = Identity {
                    fleet_url: cfg.fleet_url.clone(),
                    device_id: reg.device_id,
                    token: reg.token,
                    channel: reg.channel,
                };
                id.save(&cfg.store_root)?;
                id
            }
        };
        let mut client = FleetClient::new(&cfg.fleet_url, Some(identity.token.clone()));
        client.bandwidth_cap = cfg.bandwidth_cap;
        Ok(Agent {
            cfg,
            store,
            spool,
            client,
            identity,
            keys,
        })
    }

    /// [`Agent::open`], retried with backoff while the failure is
    /// transient (the fleet is away at registration); `on_failure` sees
    /// each failure and the wait before the next try. `None` if `stop`
    /// was set first.
    pub fn open_patiently(
        cfg: AgentConfig,
        stop: &AtomicBool,
        mut on_failure: impl FnMut(&AgentError, Duration),
    ) -> Result<Option<Agent>, AgentError> {
        let (base, max) = cfg.backoff;
        let mut failures = 0;
        while !stop.load(Ordering::SeqCst) {
            match Agent::open(cfg.clone()) {
                Ok(a) => return Ok(Some(a)),
                Err(e) if e.is_transient() => {
                    failures += 1;
                    let wait = backoff(base, max, failures);
                    on_failure(&e, wait);
                    sleep_unless(stop, wait);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The device's conditions as the app sees them (an app embedding the
    /// agent supplies these instead of a daemon reading sysfs): each field
    /// given replaces the configured or detected value from the next cycle
    /// on (`require_unmetered` / `require_charging` read them).
    pub fn set_conditions(&mut self, c: Conditions) {
        let o = &mut self.cfg.overrides;
        o.battery_pct = c.battery_pct.or(o.battery_pct);
        o.charging = c.charging.or(o.charging);
        o.unmetered = c.unmetered.or(o.unmetered);
        o.temperature_c = c.temperature_c.or(o.temperature_c);
        o.free_disk_bytes = c.free_disk_bytes.or(o.free_disk_bytes);
    }

    /// Puts an event about `model`'s active release in the telemetry
    /// spool (what `outpost serve --store` does per request; an app that
    /// runs the model itself records its own). Shipped by the next cycle or
    /// [`Agent::flush_telemetry`].
    pub fn record(
        &self,
        model: &outpost_protocol::ModelName,
        data: outpost_protocol::telemetry::EventData,
    ) -> Result<(), AgentError> {
        let pointer = self
            .store
            .active(model)?
            .ok_or_else(|| AgentError::Config {
                what: format!("telemetry for {model}"),
                problem: "nothing is installed for it: events are about an installed release"
                    .into(),
            })?;
        let version = self
            .store
            .installed_manifest(model, &pointer.active)?
            .map_or_else(|| "unknown".to_string(), |m| m.manifest.model_version);
        self.spool
            .push(&[outpost_protocol::telemetry::TelemetryEvent {
                at: clock::now(),
                model: model.clone(),
                model_version: version,
                model_digest: pointer.active,
                engine_version: self.cfg.engine.engine_version,
                app_version: self.cfg.engine.app_version,
                data,
            }])?;
        Ok(())
    }

    /// Sends the spooled telemetry now; returns how many events went.
    pub fn flush_telemetry(&self) -> Result<u64, AgentError> {
        upload::ship(self)
    }

    /// What the store has active, per model.
    pub fn installed(&self) -> Result<Vec<outpost_protocol::fleet::Installed>, AgentError> {
        install::installed(&self.store)
    }

    /// The file to load for `model`'s active blob: the blob itself, or a
    /// sealed blob opened into memory (in the background; see
    /// `outpost_store::MemoryModel::wait_for`) with the key the agent kept.
    pub fn model_file(&self, model: &outpost_protocol::ModelName) -> Result<ModelFile, AgentError> {
        let pointer = self
            .store
            .active(model)?
            .ok_or_else(|| AgentError::Config {
                what: format!("model {model}"),
                problem: "nothing is installed for it yet: run a check-in first".into(),
            })?;
        let sealed = self
            .store
            .installed_manifest(model, &pointer.active)?
            .is_some_and(|m| m.manifest.encryption.is_some());
        Ok(if sealed {
            ModelFile::Sealed(sealed::open_installed(
                &self.store,
                &self.cfg.store_root,
                self.keys.as_ref(),
                &pointer.active,
            )?)
        } else {
            ModelFile::Plain(self.store.blob_path(&pointer.active))
        })
    }

    /// One cycle: profile, check in, act on every assignment, ship
    /// telemetry. Telemetry is sent even when the check-in fails for a
    /// reason other than the network.
    pub fn run_once(&mut self) -> Result<Cycle, AgentError> {
        let profile = self.profile()?;
        let answer = self
            .client
            .check_in(&profile.fleet)
            .map_err(|e| self.name_identity(e))?;
        let mut models = Vec::new();
        for a in &answer.models {
            models.push(install::apply(self, &profile, a)?);
        }
        models.extend(install::recheck_canaries(self, &answer.models)?);
        if models.iter().any(|m| m.changed()) {
            self.notify_reload();
        }
        let telemetry_sent = upload::ship(self)?;
        let mut next = Duration::from_secs(answer.check_in_after_s.max(1));
        if let Some(max) = self.cfg.max_interval {
            next = next.min(max);
        }
        Ok(Cycle {
            device_id: answer.device_id,
            next_check_in: next,
            models,
            telemetry_sent,
        })
    }

    /// Cycles until `stop` is set: after a success, waits what the fleet
    /// asked; after a failure, backs off exponentially with jitter. The
    /// installed models keep serving throughout. `report` sees every
    /// cycle's result.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut report: impl FnMut(&Result<Cycle, AgentError>),
    ) -> Result<(), AgentError> {
        let (base, max) = self.cfg.backoff;
        let mut failures = 0u32;
        while !stop.load(Ordering::SeqCst) {
            let r = self.run_once();
            report(&r);
            let wait = match &r {
                Ok(c) => {
                    failures = 0;
                    c.next_check_in
                }
                Err(e) if e.is_transient() => {
                    failures = failures.saturating_add(1);
                    backoff(base, max, failures)
                }
                Err(_) => return r.map(|_| ()),
            };
            sleep_unless(stop, wait);
        }
        Ok(())
    }

    fn profile(&self) -> Result<Profile, AgentError> {
        let mut p = profile::detect(&self.cfg.engine, &self.cfg.store_root, &self.cfg.overrides)?;
        p.fleet.installed = install::installed(&self.store)?;
        Ok(p)
    }

    fn name_identity(&self, e: AgentError) -> AgentError {
        match e {
            AgentError::Unauthorized { message, .. } => AgentError::Unauthorized {
                message,
                identity: Identity::path(&self.cfg.store_root).display().to_string(),
            },
            e => e,
        }
    }

    /// Tells the local server to re-read the store's pointers. A server
    /// that is not running is not an error: it reads them when it starts.
    fn notify_reload(&self) {
        if let Some(url) = &self.cfg.reload_url {
            if let Err(e) = ureq::post(url).timeout(Duration::from_secs(30)).call() {
                tracing::warn!(error = %e, "could not ask the local server at {url} to reload");
            }
        }
    }
}

/// `base × 2^(failures-1)`, capped at `max`, times a jitter in [0.5, 1.5).
pub fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let capped = exp.min(max);
    let mut b = [0u8; 2];
    let jitter = if getrandom::getrandom(&mut b).is_ok() {
        0.5 + f64::from(u16::from_le_bytes(b)) / 65536.0
    } else {
        1.0
    };
    capped.mul_f64(jitter)
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = std::time::Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let now = std::time::Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let (b, m) = (Duration::from_secs(1), Duration::from_secs(60));
        for f in 1..30 {
            let d = backoff(b, m, f);
            let ideal = (1u64 << (f - 1).min(20)).min(60) as f64;
            assert!(
                d.as_secs_f64() >= ideal * 0.5 && d.as_secs_f64() < ideal * 1.5,
                "{f}: {d:?}"
            );
        }
        let ds: std::collections::BTreeSet<u128> =
            (0..20).map(|_| backoff(b, m, 3).as_nanos()).collect();
        assert!(ds.len() > 1, "jitter varies");
    }
}
