//! Read-only admin views: status, releases, rollouts and devices with
//! their counts (devices on a release, devices blocked from it), computed
//! from the state in memory; the audit log from the database.

use std::collections::BTreeMap;

use outpost_protocol::manifest::ModelName;
use outpost_protocol::Digest;

use crate::api::{
    Assigned, ChannelView, DeviceList, DeviceView, ProcessMemory, ReleaseTelemetry, ReleaseView,
    RolloutView, StatusView,
};
use crate::db::AuditRecord;
use crate::error::{FleetError, FleetResult};
use crate::rollout::Rollout;
use crate::state::lock;
use crate::telemetry::Agg;
use crate::Fleet;

impl Fleet {
    /// Counts per release: devices last issued it, devices blocked from it.
    fn release_counts(&self) -> BTreeMap<(ModelName, String), (u64, u64)> {
        let mut out: BTreeMap<(ModelName, String), (u64, u64)> = BTreeMap::new();
        for d in self.devices().all() {
            let d = lock(d);
            for (m, i) in &d.issued {
                out.entry((m.clone(), i.model_version.clone()))
                    .or_default()
                    .0 += 1;
            }
            for (m, bl) in &d.blocked {
                for b in bl {
                    out.entry((m.clone(), b.model_version.clone()))
                        .or_default()
                        .1 += 1;
                }
            }
        }
        out
    }

    pub(crate) fn rollout_view(&self, r: &Rollout) -> RolloutView {
        let (on, blocked) = self
            .release_counts()
            .get(&(r.model.clone(), r.version.clone()))
            .copied()
            .unwrap_or_default();
        RolloutView::of(r, on, blocked)
    }

    pub fn rollouts(&self) -> Vec<RolloutView> {
        let counts = self.release_counts();
        self.state()
            .rollouts
            .values()
            .map(|r| {
                let (on, bl) = counts
                    .get(&(r.model.clone(), r.version.clone()))
                    .copied()
                    .unwrap_or_default();
                RolloutView::of(r, on, bl)
            })
            .collect()
    }

    pub fn rollout(&self, id: u64) -> FleetResult<RolloutView> {
        let r = self
            .state()
            .rollouts
            .get(&id)
            .cloned()
            .ok_or_else(|| FleetError::NotFound(format!("rollout {id} does not exist")))?;
        Ok(self.rollout_view(&r))
    }

    pub fn releases(&self) -> Vec<ReleaseView> {
        let counts = self.release_counts();
        let s = self.state();
        s.releases
            .iter()
            .map(|((m, v), r)| {
                let (devices, blocked_devices) = counts
                    .get(&(m.clone(), v.clone()))
                    .copied()
                    .unwrap_or_default();
                ReleaseView {
                    release: r.clone(),
                    channels: s
                        .channels
                        .keys()
                        .filter(|c| s.channel_release(c, m) == Some(v.as_str()))
                        .cloned()
                        .collect(),
                    devices,
                    blocked_devices,
                }
            })
            .collect()
    }

    fn device_view(d: &crate::state::Device) -> DeviceView {
        DeviceView {
            id: d.id.clone(),
            app: d.app.clone(),
            channel: d.channel.clone(),
            registered_at: d.registered_at,
            public_key: d.public_key.as_ref().map(crate::keys::key32_to_base64),
            last_seen_at: d.last_seen_at,
            profile: d.profile.clone(),
            pins: d
                .pins
                .iter()
                .map(|(m, v)| (m.to_string(), v.clone()))
                .collect(),
            assigned: d
                .issued
                .iter()
                .map(|(m, i)| {
                    (
                        m.to_string(),
                        Assigned {
                            model_version: i.model_version.clone(),
                            manifest_version: i.manifest_version,
                            expires_at: i.expires_at,
                        },
                    )
                })
                .collect(),
            blocked: d
                .blocked
                .iter()
                .map(|(m, b)| (m.to_string(), b.clone()))
                .collect(),
            history: {
                let mut h: Vec<crate::api::FirstIssued> = d
                    .first_issued
                    .iter()
                    .map(|((m, v), at)| crate::api::FirstIssued {
                        model: m.to_string(),
                        model_version: v.clone(),
                        at: *at,
                    })
                    .collect();
                h.sort_by_key(|f| f.at);
                h
            },
        }
    }

    /// Devices, filtered by channel and class, sorted by id, paged.
    pub fn list_devices(
        &self,
        channel: Option<&str>,
        class: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> DeviceList {
        let mut all: Vec<DeviceView> = self
            .devices()
            .all()
            .filter_map(|d| {
                let d = lock(d);
                let class_ok =
                    class.is_none_or(|c| d.profile.as_ref().is_some_and(|p| p.device_class == c));
                (channel.is_none_or(|c| d.channel == c) && class_ok).then(|| Self::device_view(&d))
            })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let total = all.len() as u64;
        DeviceList {
            total,
            devices: all.into_iter().skip(offset).take(limit).collect(),
        }
    }

    pub fn device(&self, id: &str) -> FleetResult<DeviceView> {
        let d = self
            .devices()
            .by_id(id)
            .cloned()
            .ok_or_else(|| FleetError::NotFound(format!("device {id:?} does not exist")))?;
        let view = Self::device_view(&lock(&d));
        Ok(view)
    }

    pub fn status(&self) -> StatusView {
        let mut per_channel: BTreeMap<String, u64> = BTreeMap::new();
        let mut blocked_devices = 0;
        let online_window_s = self.config.check_in_interval_s.saturating_mul(2);
        let online_since = self.now().unix_seconds().saturating_sub(online_window_s);
        let mut online_devices = 0;
        let total = {
            let devices = self.devices();
            for d in devices.all() {
                let d = lock(d);
                *per_channel.entry(d.channel.clone()).or_default() += 1;
                if d.last_seen_at
                    .is_some_and(|t| t.unix_seconds() >= online_since)
                {
                    online_devices += 1;
                }
                if !d.blocked.is_empty() {
                    blocked_devices += 1;
                }
            }
            devices.len() as u64
        };
        let channels = {
            let s = self.state();
            s.channels
                .keys()
                .map(|c| ChannelView {
                    name: c.clone(),
                    releases: s
                        .channel_models(c)
                        .iter()
                        .filter_map(|m| {
                            s.channel_release(c, m)
                                .map(|v| (m.to_string(), v.to_string()))
                        })
                        .collect(),
                    devices: per_channel.get(c).copied().unwrap_or(0),
                })
                .collect()
        };
        StatusView {
            key_id: self.signer.key_id().to_string(),
            seal_releases: self.config.seal_releases,
            frozen: self.state().frozen.clone(),
            devices: total,
            online_devices,
            online_window_s,
            blocked_devices,
            channels,
            rollouts: self.rollouts(),
            releases: self.releases(),
            telemetry: self.release_telemetry(60),
            memory: ProcessMemory::current(),
        }
    }

    /// Per release, every cohort of the last `minutes` minutes merged
    /// (the status page's telemetry lines).
    pub fn release_telemetry(&self, minutes: u64) -> Vec<ReleaseTelemetry> {
        let mut per: BTreeMap<(String, String), (u64, Agg)> = BTreeMap::new();
        for c in self.cohorts(minutes) {
            let e = per
                .entry((c.key.model.to_string(), c.key.model_version.clone()))
                .or_default();
            e.0 += c.devices;
            e.1.merge(&c.agg);
        }
        per.into_iter()
            .map(
                |((model, model_version), (devices, agg))| ReleaseTelemetry {
                    model,
                    model_version,
                    minutes,
                    devices,
                    inferences: agg.inferences,
                    embeddings: agg.embeddings,
                    error_rate: if agg.requests() == 0 {
                        0.0
                    } else {
                        agg.errors as f64 / agg.requests() as f64
                    },
                    latency_ms_p95: agg.latency_ms.quantile(0.95),
                    tok_s_p50: agg.tok_s.quantile(0.5),
                },
            )
            .collect()
    }

    pub async fn audit_log(
        &self,
        limit: u32,
        before: Option<u64>,
    ) -> FleetResult<Vec<AuditRecord>> {
        Ok(self.db.audit_log(limit.clamp(1, 1000), before).await?)
    }

    /// Whether a blob is in the store (for `HEAD` before an upload).
    pub async fn has_blob(&self, d: &Digest) -> FleetResult<bool> {
        Ok(self.blobs.len(d).await?.is_some())
    }
}
