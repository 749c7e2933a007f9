//! Admin operations: each validates against the state in memory, commits
//! its changes and an audit record in one transaction, then applies them.
//! Anything refused is refused before the commit, so a bad request writes
//! nothing. Admin operations run one at a time (`admin_lock`).
//!
//! The kill switch (`frozen`) refuses every step forward (publishing stays
//! allowed; creating, advancing, resuming and completing rollouts and
//! setting a channel's release do not) and stops the soak timer; the ways
//! back (pause, rollback, revoke, pin) stay open.

use std::collections::BTreeMap;

use outpost_protocol::manifest::ModelName;

use crate::api::{AppKeyView, CreateRollout, KillSwitch, ReleaseRef, RolloutView};
use crate::error::{FleetError, FleetResult};
use crate::keys::{new_token, secret_hash};
use crate::meta::ReleaseMeta;
use crate::rollout::{stages_from_percent, Rollout, RolloutAction, RolloutState};
use crate::state::{lock, Change};
use crate::state::{ChannelEntry, FleetState, Freeze, Release, Revocation};
use crate::Fleet;

fn channel_name_ok(name: &str) -> FleetResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(FleetError::BadRequest(format!(
            "channel name {:?} must be 1-32 of a-z, 0-9, '-', '_'",
            name.chars().take(40).collect::<String>()
        )))
    }
}

fn reason_ok(reason: &str) -> FleetResult<()> {
    if reason.trim().is_empty() || reason.len() > 500 {
        return Err(FleetError::BadRequest(
            "reason must be 1-500 characters: say why, it goes to the audit log".into(),
        ));
    }
    Ok(())
}

impl FleetState {
    fn need_release(&self, model: &ModelName, version: &str) -> FleetResult<&Release> {
        self.release(model, version).ok_or_else(|| {
            FleetError::NotFound(format!(
                "release {model}@{version} does not exist; publish it first (known versions: {:?})",
                self.releases
                    .keys()
                    .filter(|(m, _)| m == model)
                    .map(|(_, v)| v.as_str())
                    .collect::<Vec<_>>()
            ))
        })
    }

    fn need_channel(&self, name: &str) -> FleetResult<()> {
        if self.channels.contains_key(name) {
            return Ok(());
        }
        Err(FleetError::NotFound(format!(
            "channel {name:?} does not exist; channels: {:?}",
            self.channels.keys().collect::<Vec<_>>()
        )))
    }

    fn not_frozen(&self, what: &str) -> FleetResult<()> {
        match &self.frozen {
            Some(f) => Err(FleetError::Conflict(format!(
                "the kill switch is on since {} ({}): {what} is refused until it is released",
                f.at, f.reason
            ))),
            None => Ok(()),
        }
    }

    fn need_rollout(&self, id: u64) -> FleetResult<&Rollout> {
        self.rollouts
            .get(&id)
            .ok_or_else(|| FleetError::NotFound(format!("rollout {id} does not exist")))
    }
}

impl Fleet {
    /// Publishes a release whose blobs are already in the store.
    pub async fn publish(&self, actor: &str, meta: ReleaseMeta) -> FleetResult<Release> {
        meta.validate()
            .map_err(|e| FleetError::BadRequest(e.to_string()))?;
        let _g = self.admin_guard().await?;
        if self.state().release(&meta.model, &meta.version).is_some() {
            return Err(FleetError::Conflict(format!(
                "release {}@{} already exists; a published release never changes, publish a new version",
                meta.model, meta.version
            )));
        }
        if let Some(app) = self.app_of_model(&meta.model) {
            if app != meta.app {
                return Err(FleetError::Conflict(format!(
                    "model {} belongs to the app {app:?} (its earlier releases), not {:?}; publish it with \"app\": {app:?} or under another model name",
                    meta.model, meta.app
                )));
            }
        }
        for (i, v) in meta.variants.iter().enumerate() {
            let (Some(d), Some(len)) = (v.digest, v.length) else {
                continue; // validate() refused these
            };
            match &v.encryption {
                None if self.config.seal_releases => {
                    return Err(FleetError::Conflict(format!(
                        "variants[{i}] ({}) is not sealed, and this fleet seals every release: publish with `outpost fleet publish --encrypt`",
                        v.quantization
                    )))
                }
                Some(_) if !self.state().content_keys.contains_key(&d) => {
                    return Err(FleetError::Conflict(format!(
                        "variants[{i}] ({}) is sealed but blob {d} has no content key here, so no device could open it: set it first (PUT /admin/v1/content-keys/{d})",
                        v.quantization
                    )))
                }
                _ => {}
            }
            match self.blobs.len(&d).await? {
                Some(have) if have == len => {}
                Some(have) => {
                    return Err(FleetError::BadRequest(format!(
                        "variants[{i}].length is {len} but blob {d} has {have} bytes"
                    )))
                }
                None => {
                    return Err(FleetError::BadRequest(format!(
                        "variants[{i}].digest {d} is not in the fleet's store; upload it first (PUT /admin/v1/blobs/{d})"
                    )))
                }
            }
        }
        let release = Release {
            meta,
            published_at: self.now(),
            revoked: None,
        };
        let r = ReleaseRef {
            model: release.meta.model.clone(),
            version: release.meta.version.clone(),
        };
        let detail = serde_json::json!({
            "variants": release.meta.variants.iter().map(|v| (v.quantization.clone(), v.digest)).collect::<BTreeMap<_, _>>()
        });
        self.apply_admin(
            actor,
            "release.publish",
            r.to_string(),
            detail,
            vec![Change::PutRelease(release.clone())],
        )
        .await?;
        Ok(release)
    }

    pub async fn create_channel(&self, actor: &str, name: &str) -> FleetResult<()> {
        channel_name_ok(name)?;
        let _g = self.admin_guard().await?;
        if self.state().channels.contains_key(name) {
            return Err(FleetError::Conflict(format!(
                "channel {name:?} already exists"
            )));
        }
        let c = Change::PutChannel {
            name: name.to_string(),
            created_at: self.now(),
        };
        self.apply_admin(
            actor,
            "channel.create",
            format!("channel/{name}"),
            serde_json::json!({}),
            vec![c],
        )
        .await
    }

    /// The channel runs `model@version` from now on, for every device.
    pub async fn set_channel_release(
        &self,
        actor: &str,
        channel: &str,
        r: &ReleaseRef,
    ) -> FleetResult<()> {
        let _g = self.admin_guard().await?;
        let change = {
            let s = self.state();
            s.need_channel(channel)?;
            let rel = s.need_release(&r.model, &r.version)?;
            if let Some(rev) = &rel.revoked {
                return Err(FleetError::Conflict(format!(
                    "{r} is revoked ({})",
                    rev.reason
                )));
            }
            s.not_frozen("setting a channel's release")?;
            if let Some(live) = s.live_rollout(channel, &r.model) {
                return Err(FleetError::Conflict(format!(
                    "rollout {} of {}@{} is {} on {channel}; complete or roll it back first",
                    live.id,
                    live.model,
                    live.version,
                    live.state.as_str()
                )));
            }
            Change::ChannelRelease {
                channel: channel.to_string(),
                entry: ChannelEntry {
                    model: r.model.clone(),
                    version: r.version.clone(),
                    at: self.now(),
                },
            }
        };
        self.apply_admin(
            actor,
            "channel.release",
            format!("channel/{channel}"),
            serde_json::json!({"release": r.to_string()}),
            vec![change],
        )
        .await
    }

    pub async fn create_rollout(
        &self,
        actor: &str,
        req: CreateRollout,
    ) -> FleetResult<RolloutView> {
        self.create_rollout_of(actor, req, None).await
    }

    /// A rollout, or (with `experiment`) an experiment, whose control must
    /// be the channel's release.
    pub(crate) async fn create_rollout_of(
        &self,
        actor: &str,
        req: CreateRollout,
        experiment: Option<crate::experiment::ExperimentSpec>,
    ) -> FleetResult<RolloutView> {
        let stages = stages_from_percent(&req.stages)
            .map_err(|e| FleetError::BadRequest(format!("stages: {e}")))?;
        req.target.validate().map_err(FleetError::BadRequest)?;
        if req.soak_s > 90 * 24 * 3600 {
            return Err(FleetError::BadRequest(format!(
                "soak_s {} is more than 90 days",
                req.soak_s
            )));
        }
        let _g = self.admin_guard().await?;
        let rollout = {
            let s = self.state();
            s.need_channel(&req.channel)?;
            let rel = s.need_release(&req.model, &req.version)?;
            if let Some(rev) = &rel.revoked {
                return Err(FleetError::Conflict(format!(
                    "{}@{} is revoked ({}); it cannot be rolled out",
                    req.model, req.version, rev.reason
                )));
            }
            s.not_frozen("creating a rollout")?;
            if let Some(live) = s.live_rollout(&req.channel, &req.model) {
                return Err(FleetError::Conflict(format!(
                    "rollout {} of {}@{} is already {} on {}; one rollout per model and channel at a time",
                    live.id, live.model, live.version, live.state.as_str(), req.channel
                )));
            }
            let previous = s
                .channel_release(&req.channel, &req.model)
                .map(str::to_string);
            if previous.as_deref() == Some(req.version.as_str()) {
                return Err(FleetError::Conflict(format!(
                    "{} already runs {}@{}",
                    req.channel, req.model, req.version
                )));
            }
            if let Some(e) = &experiment {
                if previous.as_deref() != Some(e.control.as_str()) {
                    return Err(FleetError::Conflict(format!(
                        "the control {}@{} is not what channel {} runs ({}); an experiment compares a treatment against the channel's release: set it with `outpost fleet release {}@{} --channel {}` or name {} as the control",
                        req.model, e.control, req.channel,
                        previous.as_deref().map_or("nothing".to_string(), |v| format!("{}@{v}", req.model)),
                        req.model, e.control, req.channel,
                        previous.as_deref().unwrap_or("the channel's release")
                    )));
                }
            }
            let seed =
                u64::from_be_bytes(crate::keys::random32()?[..8].try_into().unwrap_or([0; 8]));
            let now = self.now();
            Rollout {
                id: s.rollouts.keys().max().map_or(1, |m| m + 1),
                model: req.model,
                version: req.version,
                channel: req.channel,
                stages_bp: stages,
                stage: 0,
                soak_s: req.soak_s,
                target: req.target,
                seed,
                state: RolloutState::Active,
                previous_version: previous,
                created_at: now,
                stage_started_at: now,
                updated_at: now,
                reason: None,
                experiment,
            }
        };
        let detail = serde_json::to_value(&rollout).unwrap_or_default();
        let what = if rollout.experiment.is_some() {
            "experiment.create"
        } else {
            "rollout.create"
        };
        self.apply_admin(
            actor,
            what,
            format!("rollout/{}", rollout.id),
            detail,
            vec![Change::PutRollout(rollout.clone())],
        )
        .await?;
        Ok(self.rollout_view(&rollout))
    }

    /// Advance, pause, resume, complete or roll back a rollout.
    pub async fn rollout_action(
        &self,
        actor: &str,
        id: u64,
        action: RolloutAction,
        reason: Option<String>,
    ) -> FleetResult<RolloutView> {
        if let Some(r) = &reason {
            reason_ok(r)?;
        }
        let _g = self.admin_guard().await?;
        self.rollout_action_locked(actor, id, action, reason).await
    }

    pub(crate) async fn rollout_action_locked(
        &self,
        actor: &str,
        id: u64,
        action: RolloutAction,
        reason: Option<String>,
    ) -> FleetResult<RolloutView> {
        let now = self.now();
        let (next, changes) = {
            let s = self.state();
            let r = s.need_rollout(id)?;
            if action.moves_forward() {
                s.not_frozen(&format!("{} of rollout {id}", action.as_str()))?;
            }
            let mut next = r.after(action, now).map_err(FleetError::Conflict)?;
            if reason.is_some() {
                next.reason = reason.clone();
            }
            if !next.state.is_live() {
                // An ended experiment keeps the analysis it ended on.
                if let Some(e) = next.experiment.as_mut() {
                    if e.result.is_none() {
                        e.result = Some(self.experiment_analysis(r));
                    }
                }
            }
            let mut changes = vec![Change::PutRollout(next.clone())];
            let entry = |version: &str| Change::ChannelRelease {
                channel: r.channel.clone(),
                entry: ChannelEntry {
                    model: r.model.clone(),
                    version: version.to_string(),
                    at: now,
                },
            };
            if next.state == RolloutState::Completed {
                changes.push(entry(&r.version));
            }
            if r.state == RolloutState::Completed && next.state == RolloutState::RolledBack {
                let Some(prev) = &r.previous_version else {
                    return Err(FleetError::Conflict(format!(
                        "rollout {id} completed on a channel that had no earlier release of {}: nothing to roll back to; revoke {}@{} instead",
                        r.model, r.model, r.version
                    )));
                };
                changes.push(entry(prev));
            }
            (next, changes)
        };
        let detail = serde_json::json!({
            "stage": next.stage, "percent": crate::rollout::percent_of(next.percent_bp()),
            "state": next.state.as_str(), "reason": reason,
        });
        self.apply_admin(
            actor,
            &format!("rollout.{}", action.as_str()),
            format!("rollout/{id}"),
            detail,
            changes,
        )
        .await?;
        Ok(self.rollout_view(&next))
    }

    /// The soak timer: flushes telemetry, halts rollouts that regress
    /// (`health.rs`), then advances every active rollout whose stage has
    /// run its time, unless the kill switch is on. Returns the rollouts
    /// moved.
    pub async fn tick(&self) -> FleetResult<Vec<u64>> {
        // What other replicas changed, then this replica's telemetry.
        self.catch_up().await?;
        self.flush_telemetry().await?;
        // Halts and soak timers: only where the background lease is held.
        if !self.holds_background_lease().await? {
            return Ok(Vec::new());
        }
        self.auto_halt().await?;
        let now = self.now();
        let due: Vec<u64> = {
            let s = self.state();
            if s.frozen.is_some() {
                return Ok(Vec::new());
            }
            s.rollouts
                .values()
                .filter(|r| r.soak_s > 0 && r.soak_due(now))
                .map(|r| r.id)
                .collect()
        };
        let mut moved = Vec::new();
        for id in due {
            let _g = self.admin_guard().await?;
            // Still the lease holder (a replica that stalled past its lease
            // stops here), and re-checked on the replayed state: an
            // operator, or the replica that took over, may have acted.
            if !self.holds_background_lease().await? {
                break;
            }
            let still = {
                let s = self.state();
                s.frozen.is_none() && s.rollouts.get(&id).is_some_and(|r| r.soak_due(now))
            };
            if still {
                self.rollout_action_locked("system", id, RolloutAction::Advance, None)
                    .await?;
                moved.push(id);
            }
        }
        Ok(moved)
    }

    pub async fn pin(
        &self,
        actor: &str,
        device_id: &str,
        r: Option<&ReleaseRef>,
        model: &ModelName,
    ) -> FleetResult<()> {
        let _g = self.admin_guard().await?;
        if !self.knows_device(device_id).await? {
            return Err(FleetError::NotFound(format!(
                "device {device_id:?} does not exist"
            )));
        }
        let device_app = self.devices().by_id(device_id).map(|d| lock(d).app.clone());
        if let Some(r) = r {
            let s = self.state();
            let rel = s.need_release(&r.model, &r.version)?;
            if let Some(rev) = &rel.revoked {
                return Err(FleetError::Conflict(format!(
                    "{r} is revoked ({})",
                    rev.reason
                )));
            }
            if let Some(app) = device_app.filter(|a| *a != rel.meta.app) {
                return Err(FleetError::Conflict(format!(
                    "device {device_id} belongs to the app {app:?} and {r} to {:?}; a device runs only its app's releases",
                    rel.meta.app
                )));
            }
        }
        let change = Change::Pin {
            device_id: device_id.to_string(),
            model: model.clone(),
            version: r.map(|r| r.version.clone()),
        };
        let action = if r.is_some() {
            "device.pin"
        } else {
            "device.unpin"
        };
        let detail = serde_json::json!({"model": model, "version": r.map(|r| r.version.clone())});
        self.apply_admin(
            actor,
            action,
            format!("device/{device_id}"),
            detail,
            vec![change],
        )
        .await
    }

    pub async fn move_device(
        &self,
        actor: &str,
        device_id: &str,
        channel: &str,
    ) -> FleetResult<()> {
        let _g = self.admin_guard().await?;
        self.state().need_channel(channel)?;
        if !self.knows_device(device_id).await? {
            return Err(FleetError::NotFound(format!(
                "device {device_id:?} does not exist"
            )));
        }
        let change = Change::DeviceChannel {
            device_id: device_id.to_string(),
            channel: channel.to_string(),
        };
        self.apply_admin(
            actor,
            "device.channel",
            format!("device/{device_id}"),
            serde_json::json!({"channel": channel}),
            vec![change],
        )
        .await
    }

    /// Revokes releases: no device is given them again; live rollouts of
    /// them end as `aborted`; their devices fall back at the next check-in.
    fn revoke_changes(
        &self,
        s: &FleetState,
        refs: &[ReleaseRef],
        reason: &str,
    ) -> FleetResult<Vec<Change>> {
        let now = self.now();
        let mut changes = Vec::new();
        for r in refs {
            let rel = s.need_release(&r.model, &r.version)?;
            if rel.revoked.is_some() {
                return Err(FleetError::Conflict(format!("{r} is already revoked")));
            }
            changes.push(Change::Revoke {
                model: r.model.clone(),
                version: r.version.clone(),
                revocation: Revocation {
                    at: now,
                    reason: reason.to_string(),
                },
            });
            for ro in s
                .rollouts
                .values()
                .filter(|ro| ro.state.is_live() && ro.model == r.model && ro.version == r.version)
            {
                let mut ended = ro.clone();
                ended.state = RolloutState::Aborted;
                ended.reason = Some(format!("release revoked: {reason}"));
                ended.updated_at = now;
                changes.push(Change::PutRollout(ended));
            }
        }
        Ok(changes)
    }

    pub async fn revoke(&self, actor: &str, r: &ReleaseRef, reason: &str) -> FleetResult<()> {
        reason_ok(reason)?;
        let _g = self.admin_guard().await?;
        let changes = self.revoke_changes(&self.state(), std::slice::from_ref(r), reason)?;
        self.apply_admin(
            actor,
            "release.revoke",
            r.to_string(),
            serde_json::json!({"reason": reason}),
            changes,
        )
        .await
    }

    /// The kill switch: freeze (and revoke) in one step, or thaw.
    pub async fn kill_switch(&self, actor: &str, req: KillSwitch) -> FleetResult<()> {
        let reason = req.reason.clone().unwrap_or_default();
        if req.freeze {
            reason_ok(&reason)?;
        } else if !req.revoke.is_empty() {
            return Err(FleetError::BadRequest(
                "revoke goes with freeze: true; to revoke alone use POST /admin/v1/revoke".into(),
            ));
        }
        let _g = self.admin_guard().await?;
        let changes = {
            let s = self.state();
            let mut changes = self.revoke_changes(&s, &req.revoke, &reason)?;
            changes.push(Change::Freeze(req.freeze.then(|| Freeze {
                reason: reason.clone(),
                at: self.now(),
            })));
            changes
        };
        let action = if req.freeze {
            "fleet.freeze"
        } else {
            "fleet.unfreeze"
        };
        let detail = serde_json::json!({"reason": req.reason, "revoke": req.revoke.iter().map(|r| r.to_string()).collect::<Vec<_>>()});
        self.apply_admin(actor, action, "fleet".into(), detail, changes)
            .await
    }

    /// A new app key for `app`'s devices (shown once).
    pub async fn create_app_key(
        &self,
        actor: &str,
        label: &str,
        app: &str,
    ) -> FleetResult<AppKeyView> {
        if label.is_empty() || label.len() > 64 {
            return Err(FleetError::BadRequest(
                "label must be 1-64 characters".into(),
            ));
        }
        crate::access::check_name("app", app).map_err(FleetError::BadRequest)?;
        let _g = self.admin_guard().await?;
        let key = new_token("opk_")?;
        let change = Change::PutAppKey {
            hash: secret_hash(&key),
            label: label.to_string(),
            created_at: self.now(),
            app: app.to_string(),
        };
        self.apply_admin(
            actor,
            "app_key.create",
            format!("app_key/{label}"),
            serde_json::json!({"app": app}),
            vec![change],
        )
        .await?;
        Ok(AppKeyView {
            label: label.to_string(),
            app: app.to_string(),
            app_key: key,
        })
    }
}
