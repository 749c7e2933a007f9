//! Content keys of sealed models (#23). An admin sets a sealed blob's key
//! (`PUT /admin/v1/content-keys/{digest}`, audited; never shown again). A
//! device asks for it (`POST /v1/content-keys`) and gets it only wrapped
//! with HPKE to its own X25519 key (`outpost_seal::wrap`), bound to the
//! release, the digest, its id, a 5-minute expiry and its request nonce,
//! and only when it is registered with a public key, not revoked, and was
//! issued a manifest for that blob (its app, channel and class are what
//! got it that manifest). Every grant is audited with the device as actor;
//! each device may ask [`GRANTS_PER_MINUTE`] times a minute.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use outpost_protocol::fleet::{KeyGrant, KeyRequest};
use outpost_protocol::{Digest, Manifest};
use outpost_seal::wrap::{wrap, DevicePublic, Grant};
use outpost_seal::ContentKey;

use crate::error::{FleetError, FleetResult};
use crate::state::{lock, Change};
use crate::Fleet;

/// Key requests one device may make per minute.
pub const GRANTS_PER_MINUTE: u32 = 20;
/// How long a grant is good for.
pub const GRANT_TTL_S: u64 = 300;

/// Requests per device in the current minute.
#[derive(Debug, Default)]
pub struct GrantCounter(std::sync::Mutex<HashMap<String, (u64, u32)>>);

impl GrantCounter {
    /// Counts one request; false once the device is over the limit.
    fn allow(&self, device_id: &str, minute: u64) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 100_000 {
            m.retain(|_, (at, _)| *at == minute);
        }
        let e = m.entry(device_id.to_string()).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 += 1;
        e.1 <= GRANTS_PER_MINUTE
    }
}

impl Fleet {
    /// Sets the content key of the sealed blob `digest` (standard base64,
    /// 32 bytes).
    /// `replace`: whether an existing key may be replaced (not by a token
    /// scoped to apps: the key of a blob no release uses yet is anyone's).
    pub async fn put_content_key(
        &self,
        actor: &str,
        digest: Digest,
        key: &str,
        replace: bool,
    ) -> FleetResult<()> {
        let key = crate::keys::key32_from_base64(key)
            .map_err(|e| FleetError::BadRequest(format!("key: {e}")))?;
        let _g = self.admin_guard().await?;
        if !replace && self.state().content_keys.contains_key(&digest) {
            return Err(FleetError::Forbidden(format!(
                "blob {digest} has a content key already; only a token for every app may replace it"
            )));
        }
        self.apply_admin(
            actor,
            "content-key.put",
            format!("blob/{digest}"),
            serde_json::json!({}),
            vec![Change::PutContentKey {
                digest,
                key,
                created_at: self.now(),
            }],
        )
        .await
    }

    /// Stops every content-key release to device `device_id`.
    pub async fn revoke_device(&self, actor: &str, device_id: &str) -> FleetResult<()> {
        let _g = self.admin_guard().await?;
        if !self.knows_device(device_id).await? {
            return Err(FleetError::NotFound(format!(
                "device {device_id:?} does not exist"
            )));
        }
        self.apply_admin(
            actor,
            "device.revoke",
            format!("device/{device_id}"),
            serde_json::json!({}),
            vec![Change::RevokeDevice {
                device_id: device_id.to_string(),
                at: self.now(),
            }],
        )
        .await
    }

    /// `POST /v1/content-keys` with the device's bearer token. Grants and
    /// refusals (after the token is accepted) are both audited, with the
    /// device as actor.
    pub async fn grant_content_key(&self, token: &str, req: KeyRequest) -> FleetResult<KeyGrant> {
        let device = self.device_by_token(token).await?;
        let device_id = lock(&device).id.clone();
        let digest = req.digest;
        match self.grant_to(&device, req).await {
            Ok(g) => Ok(g),
            Err(e) => {
                let audit = device_audit(
                    self.now(),
                    &device_id,
                    "content-key.refuse",
                    &digest,
                    serde_json::json!({"reason": e.to_string()}),
                );
                // The refusal stands even if its record cannot be written.
                if let Err(db) = self.db.commit(Vec::new(), audit).await {
                    tracing::error!(error = %db, "auditing a refused content-key request");
                }
                Err(e)
            }
        }
    }

    async fn grant_to(
        &self,
        device: &crate::state::DeviceRef,
        req: KeyRequest,
    ) -> FleetResult<KeyGrant> {
        let nonce = parse_nonce(&req.nonce)?;
        let now = self.now();
        let (device_id, public, release) = {
            let d = lock(device);
            if let Some(at) = d.revoked_at {
                return Err(FleetError::Forbidden(format!(
                    "device {} was revoked at {at}: no content keys are released to it",
                    d.id
                )));
            }
            let public = d.public_key.ok_or_else(|| {
                FleetError::Conflict(format!(
                    "device {} registered without a public key, so no content key can be wrapped to it: register again with an agent that sends one",
                    d.id
                ))
            })?;
            let release = d
                .issued
                .values()
                .find(|i| {
                    i.envelope
                        .payload_bytes()
                        .ok()
                        .and_then(|b| Manifest::from_json(&b).ok())
                        .is_some_and(|m| m.variant.digest == req.digest)
                })
                .map(|i| format!("{}@{}", i.model, i.model_version))
                .ok_or_else(|| {
                    FleetError::Forbidden(format!(
                        "device {} was not issued a manifest for {}: it may only ask for the blobs it was assigned",
                        d.id, req.digest
                    ))
                })?;
            (d.id.clone(), public, release)
        };
        if !self.grants.allow(&device_id, now.unix_seconds() / 60) {
            return Err(FleetError::TooManyRequests(format!(
                "device {device_id} asked for more than {GRANTS_PER_MINUTE} content keys this minute: wait a minute"
            )));
        }
        let key = self
            .state()
            .content_keys
            .get(&req.digest)
            .map(|k| ContentKey::from_bytes(*k))
            .ok_or_else(|| {
                FleetError::NotFound(format!(
                    "{} has no content key here: it is not sealed, or its key was not set (PUT /admin/v1/content-keys/{{digest}})",
                    req.digest
                ))
            })?;
        let grant = Grant {
            release: release.clone(),
            digest: req.digest.to_string(),
            device_id: device_id.clone(),
            expires_at: now.unix_seconds() + GRANT_TTL_S,
            request_nonce: nonce,
        };
        let to = DevicePublic::from_bytes(public)
            .map_err(|e| FleetError::Internal(format!("stored device key: {e}")))?;
        let wrapped = wrap(&key, &to, &grant)
            .map_err(|e| FleetError::Internal(format!("wrapping a content key: {e}")))?;
        self.db
            .commit(
                Vec::new(),
                device_audit(
                    now,
                    &device_id,
                    "content-key.grant",
                    &req.digest,
                    serde_json::json!({"release": release, "expires_at": grant.expires_at}),
                ),
            )
            .await?;
        Ok(KeyGrant {
            release,
            digest: req.digest,
            device_id,
            expires_at: grant.expires_at,
            nonce: req.nonce,
            enc: B64.encode(wrapped.enc),
            ciphertext: B64.encode(&wrapped.ciphertext),
        })
    }
}

/// The audit record of a key request, with the device as actor.
fn device_audit(
    at: outpost_protocol::Timestamp,
    device_id: &str,
    action: &str,
    digest: &Digest,
    detail: serde_json::Value,
) -> crate::db::AuditRecord {
    crate::db::AuditRecord {
        id: 0,
        at,
        actor: format!("device/{device_id}"),
        action: action.into(),
        target: format!("blob/{digest}"),
        detail,
    }
}

fn parse_nonce(text: &str) -> FleetResult<[u8; 16]> {
    let bad = || {
        FleetError::BadRequest(format!(
            "nonce {text:?} is not 32 hex digits: choose 16 random bytes per request"
        ))
    };
    let mut n = [0u8; 16];
    hex::decode_to_slice(text, &mut n).map_err(|_| bad())?;
    Ok(n)
}
