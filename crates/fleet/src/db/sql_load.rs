//! Reading the fleet's database back whole (`Db::load`, in one
//! transaction), or one device of it (`Db::load_device`): rows into the
//! domain's types, a bad stored value as `DbError::Corrupt`.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::codec::{corrupt, digest, model, sql, ts};
use super::error::{DbError, DbResult};
use super::{NewDevice, Snapshot, StoredDevice};
use crate::rollout::Rollout;
use crate::state::{Channel, ChannelEntry, Freeze, Issued, Release, Revocation};

pub(super) async fn load_all(tx: &mut Transaction<'_, Any>) -> DbResult<Snapshot> {
    let mut snap = Snapshot::default();
    for row in sqlx::query(
        "SELECT meta, published_at, revoked_at, revoke_reason FROM releases ORDER BY published_at, model, version",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(sql("loading releases"))?
    {
        let meta: String = row.get("meta");
        let revoked_at: Option<i64> = row.get("revoked_at");
        let reason: Option<String> = row.get("revoke_reason");
        snap.releases.push(Release {
            meta: serde_json::from_str(&meta).map_err(corrupt("release"))?,
            published_at: ts(row.get("published_at")),
            revoked: revoked_at.map(|at| Revocation {
                at: ts(at),
                reason: reason.unwrap_or_default(),
            }),
        });
    }
    let mut channels: BTreeMap<String, Channel> = BTreeMap::new();
    for row in sqlx::query("SELECT name, created_at FROM channels")
        .fetch_all(&mut **tx)
        .await
        .map_err(sql("loading channels"))?
    {
        let name: String = row.get("name");
        channels.insert(
            name.clone(),
            Channel {
                name,
                created_at: ts(row.get("created_at")),
                history: Vec::new(),
            },
        );
    }
    for row in sqlx::query("SELECT channel, model, version, at FROM channel_releases ORDER BY id")
        .fetch_all(&mut **tx)
        .await
        .map_err(sql("loading channel releases"))?
    {
        let ch: String = row.get("channel");
        if let Some(c) = channels.get_mut(&ch) {
            c.history.push(ChannelEntry {
                model: model(row.get("model"))?,
                version: row.get("version"),
                at: ts(row.get("at")),
            });
        }
    }
    snap.channels = channels.into_values().collect();
    for row in sqlx::query("SELECT body FROM rollouts ORDER BY id")
        .fetch_all(&mut **tx)
        .await
        .map_err(sql("loading rollouts"))?
    {
        let body: String = row.get("body");
        snap.rollouts
            .push(serde_json::from_str::<Rollout>(&body).map_err(corrupt("rollout"))?);
    }
    for row in sqlx::query("SELECT key, value FROM meta")
        .fetch_all(&mut **tx)
        .await
        .map_err(sql("loading settings"))?
    {
        let key: String = row.get("key");
        let value: String = row.get("value");
        match key.as_str() {
            "frozen" => {
                snap.frozen = serde_json::from_str::<Option<Freeze>>(&value)
                    .map_err(corrupt("kill switch"))?
            }
            "version_reserved" => {
                snap.version_reserved = value.parse().map_err(|_| DbError::Corrupt {
                    what: "manifest version reservation",
                    problem: format!("{value:?} is not a number"),
                })?
            }
            _ => {}
        }
    }
    for row in sqlx::query("SELECT hash, app FROM app_keys")
        .fetch_all(&mut **tx)
        .await
        .map_err(sql("loading app keys"))?
    {
        snap.app_keys
            .push((digest(row.get("hash"), "app key hash")?, row.get("app")));
    }
    for row in sqlx::query("SELECT digest, key FROM content_keys")
        .fetch_all(&mut **tx)
        .await
        .map_err(sql("loading content keys"))?
    {
        let key: String = row.get("key");
        let key = crate::keys::key32_from_base64(&key).map_err(|problem| DbError::Corrupt {
            what: "a content key",
            problem,
        })?;
        snap.content_keys
            .push((digest(row.get("digest"), "sealed blob digest")?, key));
    }
    snap.devices = load_devices(tx, None).await?;
    snap.accounts = super::sql_accounts::load(tx).await?;
    let position: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM change_log")
        .fetch_one(&mut **tx)
        .await
        .map_err(sql("reading the change log"))?;
    snap.change_log_position = position.map_or(0, |p| u64::try_from(p).unwrap_or(0));
    Ok(snap)
}

/// Every device, or only the one with id `only`.
pub(super) async fn load_devices(
    tx: &mut Transaction<'_, Any>,
    only: Option<&str>,
) -> DbResult<Vec<StoredDevice>> {
    // The same statement for all devices or one (bound as $1).
    let q = |all: &'static str, one: &'static str| match only {
        None => sqlx::query(all),
        Some(id) => sqlx::query(one).bind(id.to_string()),
    };
    let mut devices: BTreeMap<String, StoredDevice> = BTreeMap::new();
    for row in q(
        "SELECT id, token_hash, channel, registered_at, last_seen_at, profile, blocked, public_key, revoked_at, app FROM devices",
        "SELECT id, token_hash, channel, registered_at, last_seen_at, profile, blocked, public_key, revoked_at, app FROM devices WHERE id = $1",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(sql("loading devices"))?
    {
        let d = stored_device(&row)?;
        devices.insert(d.new.id.clone(), d);
    }
    for row in q(
        "SELECT device_id, model, version FROM pins",
        "SELECT device_id, model, version FROM pins WHERE device_id = $1",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(sql("loading pins"))?
    {
        let id: String = row.get("device_id");
        if let Some(d) = devices.get_mut(&id) {
            d.pins.push((model(row.get("model"))?, row.get("version")));
        }
    }
    for row in q(
        "SELECT device_id, model, manifest_version, content_key, model_version, expires_at, envelope FROM issued",
        "SELECT device_id, model, manifest_version, content_key, model_version, expires_at, envelope FROM issued WHERE device_id = $1",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(sql("loading issued manifests"))?
    {
        let id: String = row.get("device_id");
        let envelope: String = row.get("envelope");
        let issued = Issued {
            model: model(row.get("model"))?,
            manifest_version: u64::try_from(row.get::<i64, _>("manifest_version"))
                .unwrap_or(0),
            content_key: digest(row.get("content_key"), "content key")?,
            model_version: row.get("model_version"),
            expires_at: ts(row.get("expires_at")),
            envelope: serde_json::from_str(&envelope).map_err(corrupt("issued manifest"))?,
        };
        if let Some(d) = devices.get_mut(&id) {
            d.issued.push(issued);
        }
    }
    for row in q(
        "SELECT device_id, model, model_version, at FROM first_issued",
        "SELECT device_id, model, model_version, at FROM first_issued WHERE device_id = $1",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(sql("loading first-issue times"))?
    {
        let id: String = row.get("device_id");
        if let Some(d) = devices.get_mut(&id) {
            d.first_issued.push((
                model(row.get("model"))?,
                row.get("model_version"),
                ts(row.get("at")),
            ));
        }
    }
    Ok(devices.into_values().collect())
}

pub(super) fn stored_device(row: &AnyRow) -> DbResult<StoredDevice> {
    let profile: Option<String> = row.get("profile");
    let blocked: Option<String> = row.get("blocked");
    Ok(StoredDevice {
        new: NewDevice {
            id: row.get("id"),
            token_hash: digest(row.get("token_hash"), "device token hash")?,
            app: row.get("app"),
            channel: row.get("channel"),
            registered_at: ts(row.get("registered_at")),
            public_key: row
                .get::<Option<String>, _>("public_key")
                .map(|k| {
                    crate::keys::public_key_from_base64(&k).map_err(|problem| DbError::Corrupt {
                        what: "a device's public key",
                        problem,
                    })
                })
                .transpose()?,
        },
        revoked_at: row.get::<Option<i64>, _>("revoked_at").map(ts),
        last_seen_at: row.get::<Option<i64>, _>("last_seen_at").map(ts),
        profile: profile
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(corrupt("device profile"))?,
        blocked: blocked
            .map(|b| serde_json::from_str(&b))
            .transpose()
            .map_err(corrupt("device blocked list"))?
            .unwrap_or_default(),
        pins: Vec::new(),
        issued: Vec::new(),
        first_issued: Vec::new(),
    })
}
