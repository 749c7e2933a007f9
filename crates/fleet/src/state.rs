//! The fleet's state in memory: releases, channels, rollouts, the kill
//! switch, and every device. The database is the truth; this is its image,
//! loaded at start and changed only by applying a [`Change`] after the
//! database committed it, so check-ins never wait on a query.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use outpost_protocol::fleet::{Blocked, DeviceProfile};
use outpost_protocol::manifest::ModelName;
use outpost_protocol::signing::SignedManifest;
use outpost_protocol::{Digest, Timestamp};
use serde::{Deserialize, Serialize};

use crate::access::{AccountChange, Accounts};
use crate::meta::ReleaseMeta;
use crate::rollout::Rollout;

/// An admin change, as committed and then applied in memory. Short-lived
/// (one admin request), so the size of a rollout with its experiment's
/// analysis does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    PutRelease(Release),
    Revoke {
        model: ModelName,
        version: String,
        revocation: Revocation,
    },
    PutChannel {
        name: String,
        created_at: Timestamp,
    },
    ChannelRelease {
        channel: String,
        entry: ChannelEntry,
    },
    /// Insert or replace.
    PutRollout(Rollout),
    /// `None` removes the pin.
    Pin {
        device_id: String,
        model: ModelName,
        version: Option<String>,
    },
    DeviceChannel {
        device_id: String,
        channel: String,
    },
    Freeze(Option<Freeze>),
    PutAppKey {
        hash: Digest,
        label: String,
        created_at: Timestamp,
        /// The app its devices belong to.
        #[serde(default = "crate::access::default_app")]
        app: String,
    },
    /// A sealed blob's content key (insert or replace).
    PutContentKey {
        digest: Digest,
        key: [u8; 32],
        created_at: Timestamp,
    },
    /// No content key is released to this device any more.
    RevokeDevice {
        device_id: String,
        at: Timestamp,
    },
    /// Users, API tokens, sessions.
    Account(AccountChange),
}

/// A published model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Release {
    pub meta: ReleaseMeta,
    pub published_at: Timestamp,
    pub revoked: Option<Revocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revocation {
    pub at: Timestamp,
    pub reason: String,
}

/// "From `at` on, `channel` runs `model` `version`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelEntry {
    pub model: ModelName,
    pub version: String,
    pub at: Timestamp,
}

/// A channel and every release it was given, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Channel {
    pub name: String,
    pub created_at: Timestamp,
    pub history: Vec<ChannelEntry>,
}

/// The kill switch, when thrown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Freeze {
    pub reason: String,
    pub at: Timestamp,
}

/// The channels every fleet starts with; more can be created.
pub const BUILTIN_CHANNELS: [&str; 3] = ["stable", "beta", "canary"];

/// Everything but the devices.
#[derive(Debug, Clone, Default)]
pub struct FleetState {
    pub releases: BTreeMap<(ModelName, String), Release>,
    pub channels: BTreeMap<String, Channel>,
    pub rollouts: BTreeMap<u64, Rollout>,
    pub frozen: Option<Freeze>,
    /// sha256 of each app key → the app its devices belong to.
    pub app_keys: BTreeMap<Digest, String>,
    /// Sealed blob digest → its content key (never shown).
    pub content_keys: BTreeMap<Digest, [u8; 32]>,
    pub accounts: Accounts,
}

impl FleetState {
    pub fn release(&self, model: &ModelName, version: &str) -> Option<&Release> {
        self.releases.get(&(model.clone(), version.to_string()))
    }

    /// The app `model` belongs to: its releases' (all of a model's
    /// releases have one app; `publish` refuses another); `None` before
    /// its first release.
    pub fn model_app(&self, model: &ModelName) -> Option<&str> {
        self.releases
            .range((model.clone(), String::new())..)
            .next()
            .filter(|((m, _), _)| m == model)
            .map(|(_, r)| r.meta.app.as_str())
    }

    /// The active or paused rollout of `model` on `channel`.
    pub fn live_rollout(&self, channel: &str, model: &ModelName) -> Option<&Rollout> {
        self.rollouts
            .values()
            .find(|r| r.state.is_live() && r.channel == channel && &r.model == model)
    }

    /// The channel's releases of `model`, newest first (duplicates kept).
    pub fn channel_history(&self, channel: &str, model: &ModelName) -> Vec<&str> {
        self.channels
            .get(channel)
            .map(|c| {
                c.history
                    .iter()
                    .rev()
                    .filter(|e| &e.model == model)
                    .map(|e| e.version.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The release a channel runs now: its newest entry not revoked.
    pub fn channel_release(&self, channel: &str, model: &ModelName) -> Option<&str> {
        self.channel_history(channel, model)
            .into_iter()
            .find(|v| self.release(model, v).is_some_and(|r| r.revoked.is_none()))
    }

    /// Models a channel has something for (a release or a live rollout).
    pub fn channel_models(&self, channel: &str) -> BTreeSet<ModelName> {
        let mut out: BTreeSet<ModelName> = self
            .channels
            .get(channel)
            .map(|c| c.history.iter().map(|e| e.model.clone()).collect())
            .unwrap_or_default();
        out.extend(
            self.rollouts
                .values()
                .filter(|r| r.state.is_live() && r.channel == channel)
                .map(|r| r.model.clone()),
        );
        out
    }

    /// Applies a committed change. Device-level changes are the device
    /// registry's (see [`Devices::apply`]).
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::PutRelease(r) => {
                self.releases
                    .insert((r.meta.model.clone(), r.meta.version.clone()), r.clone());
            }
            Change::Revoke {
                model,
                version,
                revocation,
            } => {
                if let Some(r) = self.releases.get_mut(&(model.clone(), version.clone())) {
                    r.revoked = Some(revocation.clone());
                }
            }
            Change::PutChannel { name, created_at } => {
                self.channels
                    .entry(name.clone())
                    .or_insert_with(|| Channel {
                        name: name.clone(),
                        created_at: *created_at,
                        history: Vec::new(),
                    });
            }
            Change::ChannelRelease { channel, entry } => {
                if let Some(c) = self.channels.get_mut(channel) {
                    c.history.push(entry.clone());
                }
            }
            Change::PutRollout(r) => {
                self.rollouts.insert(r.id, r.clone());
            }
            Change::Freeze(f) => self.frozen = f.clone(),
            Change::PutAppKey { hash, app, .. } => {
                self.app_keys.insert(*hash, app.clone());
            }
            Change::PutContentKey { digest, key, .. } => {
                self.content_keys.insert(*digest, *key);
            }
            Change::Account(c) => self.accounts.apply(c),
            Change::Pin { .. } | Change::DeviceChannel { .. } | Change::RevokeDevice { .. } => {}
        }
    }
}

/// The last manifest issued to a device for a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Issued {
    pub model: ModelName,
    pub manifest_version: u64,
    /// sha256 of the manifest with version and expiry zeroed: equal keys
    /// mean the same instruction, so the same envelope is sent again.
    pub content_key: Digest,
    pub model_version: String,
    pub expires_at: Timestamp,
    pub envelope: SignedManifest,
}

/// One device as the fleet knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: String,
    pub token_hash: Digest,
    /// The app it registered for (its app key's): it is offered only that
    /// app's models.
    pub app: String,
    pub channel: String,
    pub registered_at: Timestamp,
    /// X25519, for sealed models' content keys (`None` from older agents).
    pub public_key: Option<[u8; 32]>,
    /// When an admin revoked it: no content key is released to it since.
    pub revoked_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
    pub profile: Option<DeviceProfile>,
    /// Model → pinned release version.
    pub pins: BTreeMap<ModelName, String>,
    pub issued: BTreeMap<ModelName, Issued>,
    /// (model, version) → when this device was first issued that release.
    pub first_issued: BTreeMap<(ModelName, String), Timestamp>,
    /// Model → releases skipped at the last check-in as not loadable.
    pub blocked: BTreeMap<ModelName, Vec<Blocked>>,
}

pub type DeviceRef = Arc<Mutex<Device>>;

/// Locks a device; a panic while it was held cannot leave it torn (every
/// change is a field assignment), so a poisoned lock is taken as is.
pub fn lock(d: &DeviceRef) -> MutexGuard<'_, Device> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every device, by id and by token hash.
#[derive(Debug, Default)]
pub struct Devices {
    by_id: HashMap<String, DeviceRef>,
    by_token: HashMap<Digest, DeviceRef>,
}

impl Devices {
    pub fn insert(&mut self, d: Device) {
        let id = d.id.clone();
        let token = d.token_hash;
        let r = Arc::new(Mutex::new(d));
        self.by_id.insert(id, r.clone());
        self.by_token.insert(token, r);
    }

    pub fn by_id(&self, id: &str) -> Option<&DeviceRef> {
        self.by_id.get(id)
    }

    pub fn by_token(&self, hash: &Digest) -> Option<&DeviceRef> {
        self.by_token.get(hash)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn all(&self) -> impl Iterator<Item = &DeviceRef> {
        self.by_id.values()
    }

    /// Applies a committed device-level change (pin, channel move).
    pub fn apply(&self, change: &Change) {
        match change {
            Change::Pin {
                device_id,
                model,
                version,
            } => {
                if let Some(d) = self.by_id.get(device_id) {
                    let mut d = lock(d);
                    match version {
                        Some(v) => d.pins.insert(model.clone(), v.clone()),
                        None => d.pins.remove(model),
                    };
                }
            }
            Change::DeviceChannel { device_id, channel } => {
                if let Some(d) = self.by_id.get(device_id) {
                    lock(d).channel = channel.clone();
                }
            }
            Change::RevokeDevice { device_id, at } => {
                if let Some(d) = self.by_id.get(device_id) {
                    lock(d).revoked_at = Some(*at);
                }
            }
            _ => {}
        }
    }
}
