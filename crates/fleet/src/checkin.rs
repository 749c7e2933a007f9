//! The device side of the fleet: registration and check-in.
//!
//! A check-in validates the profile, finds the device by the SHA-256 of its
//! token, decides each model (`assign.rs`), and signs a new manifest only
//! when the instruction changed (or the last one is past half its life);
//! otherwise the very bytes issued before go out again. The answer leaves
//! only after the device write (last seen, changed profile, new manifests)
//! is committed by the group-commit writer.

use std::collections::BTreeMap;

use outpost_protocol::fleet::{
    Blocked, CheckInRequest, CheckInResponse, ModelAssignment, RegisterRequest, RegisterResponse,
};
use outpost_protocol::manifest::ModelName;
use outpost_protocol::{Digest, Timestamp};

use crate::assign::decide;
use crate::db::{DeviceWrite, NewDevice};
use crate::error::{FleetError, FleetResult};
use crate::keys::{new_token, random32, secret_hash};
use crate::state::{lock, Device, Issued, Release};
use crate::Fleet;

/// The channel a device joins when it names none.
pub const DEFAULT_CHANNEL: &str = "stable";

impl Fleet {
    /// `POST /v1/devices/register`.
    pub async fn register(&self, req: RegisterRequest) -> FleetResult<RegisterResponse> {
        let channel = req.channel.unwrap_or_else(|| DEFAULT_CHANNEL.to_string());
        let app = {
            let state = self.state();
            let Some(app) = state.app_keys.get(&secret_hash(&req.app_key)).cloned() else {
                return Err(FleetError::Unauthorized(
                    "app_key is not known to this fleet; use the key in the fleet's data folder (app.key) or one made with POST /admin/v1/app-keys".into(),
                ));
            };
            if !state.channels.contains_key(&channel) {
                return Err(FleetError::BadRequest(format!(
                    "channel {channel:?} does not exist; channels: {:?}",
                    state.channels.keys().collect::<Vec<_>>()
                )));
            }
            app
        };
        let public_key = req
            .public_key
            .as_deref()
            .map(crate::keys::public_key_from_base64)
            .transpose()
            .map_err(|e| {
                FleetError::BadRequest(format!(
                    "public_key: {e}; send the device's X25519 public key (32 bytes, standard base64) or leave it out"
                ))
            })?;
        let id = format!(
            "dev-{}",
            &Digest::from_sha256_bytes(random32()?).hex()[..24]
        );
        let token = new_token("opd_")?;
        let new = NewDevice {
            id: id.clone(),
            token_hash: secret_hash(&token),
            app,
            channel: channel.clone(),
            registered_at: self.now(),
            public_key,
        };
        self.writer
            .write(DeviceWrite::Register(new.clone()))
            .await?;
        self.devices_mut().insert(Device {
            id: new.id,
            token_hash: new.token_hash,
            app: new.app,
            channel: new.channel,
            registered_at: new.registered_at,
            public_key: new.public_key,
            revoked_at: None,
            last_seen_at: None,
            profile: None,
            pins: BTreeMap::new(),
            issued: BTreeMap::new(),
            first_issued: BTreeMap::new(),
            blocked: BTreeMap::new(),
        });
        Ok(RegisterResponse {
            device_id: id,
            token,
            channel,
        })
    }

    /// `POST /v1/devices/check-in` with the device's bearer token.
    pub async fn check_in(&self, token: &str, req: CheckInRequest) -> FleetResult<CheckInResponse> {
        let profile = req.profile;
        profile
            .validate()
            .map_err(|e| FleetError::BadRequest(e.to_string()))?;
        let device = self.device_by_token(token).await?;
        self.versions.ensure_headroom(self.db.as_ref()).await?;
        let now = self.now();
        let ttl = self.config.manifest_ttl_s;
        let (response, write) = {
            let state = self.state();
            let mut d = lock(&device);
            // Only its app's models: a channel may carry several apps'.
            let models: Vec<ModelName> = {
                let mut m = state.channel_models(&d.channel);
                m.extend(d.pins.keys().cloned());
                m.into_iter()
                    .filter(|m| state.model_app(m).is_none_or(|a| a == d.app))
                    .collect()
            };
            let mut out = Vec::with_capacity(models.len());
            let mut blocked_now = BTreeMap::new();
            let mut new_issued = Vec::new();
            let mut first_issued = Vec::new();
            for model in &models {
                let dec = decide(&state, &d.id, &d.channel, &d.pins, &profile, model);
                if !dec.blocked.is_empty() {
                    blocked_now.insert(model.clone(), dec.blocked.clone());
                }
                let mut a = ModelAssignment {
                    model: model.clone(),
                    manifest: None,
                    model_version: None,
                    source: None,
                    blocked: dec.blocked,
                    note: dec.note,
                };
                if let Some((release, _)) = dec.chosen.filter(|_| d.public_key.is_none()) {
                    if let Some(reason) = sealed_without_key(release, &profile.device_class) {
                        a.blocked.push(reason.clone());
                        blocked_now.entry(model.clone()).or_default().push(reason);
                        out.push(a);
                        continue;
                    }
                }
                if let Some((release, source)) = dec.chosen {
                    let key_id = self.signer.key_id();
                    let Some(mut m) = release.meta.manifest_for(
                        &profile.device_class,
                        0,
                        key_id,
                        Timestamp::from_unix_seconds(0),
                    ) else {
                        // `compatible` checked the class config exists.
                        return Err(FleetError::Internal(format!(
                            "{model}@{} has no manifest for class {}",
                            release.meta.version, profile.device_class
                        )));
                    };
                    let content_key = Digest::sha256(&serde_json::to_vec(&m).unwrap_or_default());
                    let reuse = d.issued.get(model).filter(|i| {
                        i.content_key == content_key
                            && i.expires_at.unix_seconds() > now.unix_seconds() + ttl / 2
                    });
                    let envelope = match reuse {
                        Some(i) => i.envelope.clone(),
                        None => {
                            // Above the device's last one too, which another
                            // replica may have numbered from its own block.
                            let last = d.issued.get(model).map_or(0, |i| i.manifest_version);
                            m.manifest_version = self.versions.next()?.max(last + 1);
                            m.expires_at = Timestamp::from_unix_seconds(now.unix_seconds() + ttl);
                            let envelope = self.signer.sign(&m);
                            let issued = Issued {
                                model: model.clone(),
                                manifest_version: m.manifest_version,
                                content_key,
                                model_version: release.meta.version.clone(),
                                expires_at: m.expires_at,
                                envelope: envelope.clone(),
                            };
                            d.issued.insert(model.clone(), issued.clone());
                            new_issued.push(issued);
                            let first = (model.clone(), release.meta.version.clone());
                            if !d.first_issued.contains_key(&first) {
                                d.first_issued.insert(first.clone(), now);
                                first_issued.push(first);
                            }
                            envelope
                        }
                    };
                    a.manifest = Some(envelope);
                    a.model_version = Some(release.meta.version.clone());
                    a.source = Some(source);
                }
                out.push(a);
            }
            let profile_changed = d.profile.as_ref() != Some(&profile);
            let blocked_changed = d.blocked != blocked_now;
            d.last_seen_at = Some(now);
            let write = DeviceWrite::CheckIn {
                device_id: d.id.clone(),
                at: now,
                profile: profile_changed.then(|| profile.clone()),
                blocked: blocked_changed.then(|| blocked_now.clone()),
                issued: new_issued,
                first_issued,
            };
            if profile_changed {
                d.profile = Some(profile);
            }
            d.blocked = blocked_now;
            let response = CheckInResponse {
                device_id: d.id.clone(),
                channel: d.channel.clone(),
                check_in_after_s: self.config.check_in_interval_s,
                models: out,
            };
            (response, write)
        };
        self.writer.write(write).await?;
        Ok(response)
    }
}

/// A device registered without a public key cannot open a sealed variant:
/// why it is blocked from `release`, or `None` when its variant is plain.
fn sealed_without_key(release: &Release, class: &str) -> Option<Blocked> {
    let (_, cfg) = release.meta.class_config(class)?;
    release.meta.variant(&cfg.variant)?.encryption.as_ref()?;
    Some(Blocked {
        model_version: release.meta.version.clone(),
        reason: "the release is sealed and this device registered without a public key: register again with an agent that makes a device key".into(),
    })
}
