//! Telemetry ingest and per-cohort aggregation.
//!
//! `POST /v1/telemetry` (device token) carries a
//! [`TelemetryBatch`]. Semantics, in the order they are checked:
//! - the token must be a device's, and `device_id` that device (401);
//! - more than [`MAX_EVENTS`] events → 413 (the body limit, 1 MiB, too);
//! - malformed, unknown field or unknown `kind` → 400 naming it; bad values
//!   (NaN, out of range, bad labels) → 400 naming the field;
//! - a batch id this device sent before → 200 with `duplicate: true`,
//!   nothing counted again;
//! - events stamped more than `skew_tolerance_s` after the fleet's clock
//!   are counted at receive time (`clamped`); events older than
//!   `max_age_s` are dropped (`too_old`);
//! - events naming a release the fleet never published are dropped
//!   (`unknown_release`: a device cannot make up cohorts); events of a
//!   revoked release are counted under that release, since those devices
//!   run it until their next check-in and its numbers are what matter.
//!
//! Events are aggregated per cohort (device class × channel × model ×
//! version, class and channel as the fleet knows the device) per minute of
//! their timestamp into an [`Agg`]: counts plus [`Histogram`]s, all
//! mergeable, so a dashboard over any window merges minutes and never
//! reads raw events (which are not kept). Aggregates live in memory for
//! `max_age_s` and are written through the [`crate::db::Db`] trait by
//! [`Fleet::flush_telemetry`] (each tick): the changed minutes and the new
//! batch ids in one transaction, so after a crash a batch is either fully
//! counted with its id recorded or not at all. A crash loses at most the
//! last tick of acknowledged telemetry; it never counts a batch twice.
//! Roll-up: each flush merges the minutes of every hour that ended more
//! than `rollup_after_s` ago (2 h) into one row per cohort and hour
//! (histograms add, so counts and percentiles stay what they were) and
//! deletes those minutes in the same transaction; an event that arrives
//! late for a rolled hour is counted into the hour. Windows read hours
//! plus minutes: where a window reaches rolled hours, it takes each hour
//! it overlaps whole.
//! Distinct devices per cohort are counted in memory only and start from
//! zero after a restart.
//!
//! Where replicas share a PostgreSQL database it works differently
//! ([`shared`]): each batch is merged into the database with its id before
//! the answer, distinct devices are kept there too, and the memory above is
//! a cache each tick refreshes; nothing is flushed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use outpost_protocol::manifest::ModelName;
use outpost_protocol::telemetry::{
    EventData, FeedbackSignal, TelemetryAck, TelemetryBatch, ThermalState, MAX_EVENTS,
};
use outpost_protocol::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{FleetError, FleetResult};
use crate::hist::Histogram;
use crate::state::lock;
use crate::Fleet;

mod flush;
pub mod shared;

/// Telemetry limits. Defaults in [`TelemetryConfig::default`].
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// How far in the future an event may be stamped before it is clamped
    /// to the receive time (default 300 s).
    pub skew_tolerance_s: u64,
    /// Older events are dropped; aggregates and batch ids are kept in
    /// memory this long (default 2 days).
    pub max_age_s: u64,
    /// Minutes of an hour that ended longer ago than this are merged into
    /// an hourly row (default 2 h; keep it above the halt window).
    pub rollup_after_s: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            skew_tolerance_s: 300,
            max_age_s: 2 * 86_400,
            rollup_after_s: 2 * 3600,
        }
    }
}

/// One cohort's telemetry aggregate for one minute (unix seconds / 60).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteRow {
    pub minute: u64,
    pub key: CohortKey,
    pub agg: Agg,
}

/// Telemetry rows: per-minute aggregates, hourly ones (`minute` is the
/// hour's first minute) and counted batch ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryRows {
    pub minutes: Vec<MinuteRow>,
    pub hours: Vec<MinuteRow>,
    pub batches: Vec<BatchRecord>,
}

/// A telemetry batch counted: its id is never counted again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub device_id: String,
    pub batch_id: String,
    pub received_at: u64,
}

/// A cohort: devices of one class on one channel running one release.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct CohortKey {
    pub device_class: String,
    pub channel: String,
    pub model: ModelName,
    pub model_version: String,
}

/// One cohort's events in one minute (or merged over many).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Agg {
    pub events: u64,
    pub inferences: u64,
    pub errors: u64,
    pub tokens: u64,
    pub crashes: u64,
    pub canary_runs: u64,
    pub canary_fails: u64,
    pub route_local: u64,
    pub route_cloud: u64,
    /// Thermal events in state serious or critical.
    pub thermal_hot: u64,
    pub thermal_events: u64,
    pub memory_events: u64,
    pub battery_events: u64,
    pub feedback: u64,
    /// Feedback by signal (`feedback` is their sum).
    #[serde(default)]
    pub thumbs_up: u64,
    #[serde(default)]
    pub thumbs_down: u64,
    #[serde(default)]
    pub regenerates: u64,
    #[serde(default)]
    pub edits: u64,
    #[serde(default)]
    pub copies: u64,
    /// Agent install reports: releases installed, and refused or reverted.
    #[serde(default)]
    pub installs: u64,
    #[serde(default)]
    pub install_failures: u64,
    /// Embedding requests, the inputs and tokens they carried. Their
    /// engine failures count in `errors` and their latency in
    /// `latency_ms` (a cohort is one model: generative or embedding).
    #[serde(default)]
    pub embeddings: u64,
    #[serde(default)]
    pub embedding_inputs: u64,
    #[serde(default)]
    pub embedding_tokens: u64,
    /// Route events: tokens, latency and decision signals per route, and
    /// battery drain (see [`crate::economics`]).
    #[serde(default)]
    pub routes: crate::route_agg::RouteAgg,
    pub ttft_ms: Histogram,
    pub latency_ms: Histogram,
    pub tok_s: Histogram,
    pub memory_peak_mib: Histogram,
}

impl Agg {
    pub fn merge(&mut self, o: &Agg) {
        self.events += o.events;
        self.inferences += o.inferences;
        self.errors += o.errors;
        self.tokens += o.tokens;
        self.crashes += o.crashes;
        self.canary_runs += o.canary_runs;
        self.canary_fails += o.canary_fails;
        self.route_local += o.route_local;
        self.route_cloud += o.route_cloud;
        self.thermal_hot += o.thermal_hot;
        self.thermal_events += o.thermal_events;
        self.memory_events += o.memory_events;
        self.battery_events += o.battery_events;
        self.feedback += o.feedback;
        self.thumbs_up += o.thumbs_up;
        self.thumbs_down += o.thumbs_down;
        self.regenerates += o.regenerates;
        self.edits += o.edits;
        self.copies += o.copies;
        self.installs += o.installs;
        self.install_failures += o.install_failures;
        self.embeddings += o.embeddings;
        self.embedding_inputs += o.embedding_inputs;
        self.embedding_tokens += o.embedding_tokens;
        self.ttft_ms.merge(&o.ttft_ms);
        self.latency_ms.merge(&o.latency_ms);
        self.tok_s.merge(&o.tok_s);
        self.memory_peak_mib.merge(&o.memory_peak_mib);
        self.routes.merge(&o.routes);
    }

    /// Counts one event; `drain`: battery points lost since the device's
    /// previous discharging report.
    fn record_with(&mut self, data: &EventData, drain: u64) {
        self.record(data);
        self.routes.battery_drain_pct += drain;
    }

    fn record(&mut self, data: &EventData) {
        self.events += 1;
        match data {
            EventData::Inference(i) => {
                self.inferences += 1;
                self.tokens += u64::from(i.tokens);
                if i.error.is_some() {
                    self.errors += 1;
                } else {
                    // Failed requests say nothing about speed.
                    self.ttft_ms.record(i.ttft_ms);
                    self.latency_ms.record(i.latency_ms);
                    self.tok_s.record(i.tok_s);
                }
            }
            EventData::Embedding(e) => {
                self.embeddings += 1;
                self.embedding_inputs += u64::from(e.inputs);
                self.embedding_tokens += u64::from(e.tokens);
                if e.error.is_some() {
                    self.errors += 1;
                } else {
                    self.latency_ms.record(e.latency_ms);
                }
            }
            EventData::Crash(_) => self.crashes += 1,
            EventData::MemoryPeak(m) => {
                self.memory_events += 1;
                self.memory_peak_mib.record(m.bytes as f64 / 1_048_576.0);
            }
            EventData::Thermal(t) => {
                self.thermal_events += 1;
                if matches!(t.state, ThermalState::Serious | ThermalState::Critical) {
                    self.thermal_hot += 1;
                }
            }
            EventData::Battery(_) => self.battery_events += 1,
            EventData::Route(r) => {
                match r.target {
                    outpost_protocol::telemetry::RouteTarget::Local => self.route_local += 1,
                    outpost_protocol::telemetry::RouteTarget::Cloud => self.route_cloud += 1,
                }
                self.routes.record(r);
            }
            EventData::Canary(c) => {
                self.canary_runs += 1;
                if !c.pass {
                    self.canary_fails += 1;
                }
            }
            EventData::Feedback(f) => {
                self.feedback += 1;
                match f.signal {
                    FeedbackSignal::ThumbsUp => self.thumbs_up += 1,
                    FeedbackSignal::ThumbsDown => self.thumbs_down += 1,
                    FeedbackSignal::Regenerate => self.regenerates += 1,
                    FeedbackSignal::Edited => self.edits += 1,
                    FeedbackSignal::Copied => self.copies += 1,
                }
            }
            EventData::Install(i) => match i.outcome {
                outpost_protocol::telemetry::InstallOutcome::Installed => self.installs += 1,
                _ => self.install_failures += 1,
            },
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Agg {
    /// Requests the cohort served: generations plus embedding requests.
    pub fn requests(&self) -> u64 {
        self.inferences + self.embeddings
    }
}

/// A cohort over a window, as the admin API shows it. Rates: errors,
/// crashes, thumbs-down votes and regenerations per request (generations
/// and embedding requests), canary failures per canary run, cloud routes
/// per route decision. Percentiles are exact to the histogram's bucket
/// (within 4.4 %); `null` without data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CohortView {
    #[serde(flatten)]
    pub key: CohortKey,
    /// Distinct devices that reported in the window (since the fleet
    /// started).
    pub devices: u64,
    pub error_rate: f64,
    pub crash_rate: f64,
    pub canary_fail_rate: f64,
    pub cloud_route_share: f64,
    /// Thumbs-down votes and regenerations per request.
    #[serde(default)]
    pub thumbs_down_rate: f64,
    #[serde(default)]
    pub regenerate_rate: f64,
    pub ttft_ms_p50: Option<f64>,
    pub ttft_ms_p95: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub tok_s_p50: Option<f64>,
    pub tok_s_p05: Option<f64>,
    /// Peak memory the app reported, p95 (MiB).
    #[serde(default)]
    pub memory_peak_mib_p95: Option<f64>,
    #[serde(flatten)]
    pub agg: Agg,
}

impl CohortView {
    pub fn of(key: CohortKey, devices: u64, agg: Agg) -> CohortView {
        CohortView {
            key,
            devices,
            error_rate: ratio(agg.errors, agg.requests()),
            crash_rate: ratio(agg.crashes, agg.requests()),
            canary_fail_rate: ratio(agg.canary_fails, agg.canary_runs),
            cloud_route_share: ratio(agg.route_cloud, agg.route_cloud + agg.route_local),
            thumbs_down_rate: ratio(agg.thumbs_down, agg.requests()),
            regenerate_rate: ratio(agg.regenerates, agg.requests()),
            ttft_ms_p50: agg.ttft_ms.quantile(0.5),
            ttft_ms_p95: agg.ttft_ms.quantile(0.95),
            latency_ms_p50: agg.latency_ms.quantile(0.5),
            latency_ms_p95: agg.latency_ms.quantile(0.95),
            latency_ms_p99: agg.latency_ms.quantile(0.99),
            tok_s_p50: agg.tok_s.quantile(0.5),
            tok_s_p05: agg.tok_s.quantile(0.05),
            memory_peak_mib_p95: agg.memory_peak_mib.quantile(0.95),
            agg,
        }
    }
}

/// The aggregates in memory.
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    /// Minute → cohort → aggregate.
    minutes: BTreeMap<u64, HashMap<CohortKey, Agg>>,
    dirty: BTreeSet<(u64, CohortKey)>,
    /// The hour's first minute → cohort → aggregate (rolled-up minutes).
    hours: BTreeMap<u64, HashMap<CohortKey, Agg>>,
    dirty_hours: BTreeSet<(u64, CohortKey)>,
    /// Minutes before this one are counted in `hours` (0 until the first
    /// roll-up of this process).
    rolled_before: u64,
    /// Cohort → hashed device id → last minute it reported.
    devices: HashMap<CohortKey, HashMap<u64, u64>>,
    /// (device id, batch id) → received at (unix seconds).
    batches: HashMap<(String, String), u64>,
    /// Hashed device id → its last battery report (level, unix seconds),
    /// for the drain between discharging reports (memory only).
    battery: HashMap<u64, (u8, u64)>,
    new_batches: Vec<BatchRecord>,
    /// Where replicas share the database: the position to refresh from
    /// (`shared.rs`).
    refreshed_from: u64,
}

impl Telemetry {
    pub(crate) fn load(rows: TelemetryRows) -> Telemetry {
        let mut t = Telemetry::default();
        for r in rows.minutes {
            t.minutes.entry(r.minute).or_default().insert(r.key, r.agg);
        }
        for r in rows.hours {
            t.hours.entry(r.minute).or_default().insert(r.key, r.agg);
        }
        for b in rows.batches {
            t.batches.insert((b.device_id, b.batch_id), b.received_at);
        }
        t
    }

    /// Battery points lost since this device's last report (0 for events
    /// other than battery reports), counted when
    /// both reports are discharging and this one is not older.
    fn battery_drain(&mut self, device: u64, data: &EventData, at: u64) -> u64 {
        let EventData::Battery(b) = data else {
            return 0;
        };
        let prev = self.battery.get(&device).copied();
        if prev.is_some_and(|(_, t)| at < t) {
            return 0;
        }
        let level = if b.charging { u8::MAX } else { b.level_pct };
        self.battery.insert(device, (level, at));
        match prev {
            Some((was, _)) if !b.charging && was != u8::MAX && b.level_pct < was => {
                u64::from(was - b.level_pct)
            }
            _ => 0,
        }
    }

    /// Device `device` reported for `key` in `minute`: its last minute.
    fn saw(&mut self, key: CohortKey, device: u64, minute: u64) {
        self.devices
            .entry(key)
            .or_default()
            .entry(device)
            .and_modify(|m| *m = (*m).max(minute))
            .or_insert(minute);
    }

    fn prune(&mut self, oldest_minute: u64, oldest_s: u64) {
        self.minutes = self.minutes.split_off(&oldest_minute);
        self.hours = self.hours.split_off(&(oldest_minute / 60 * 60));
        self.batches.retain(|_, at| *at >= oldest_s);
        self.battery.retain(|_, (_, at)| *at >= oldest_s);
        for seen in self.devices.values_mut() {
            seen.retain(|_, m| *m >= oldest_minute);
        }
        self.devices.retain(|_, seen| !seen.is_empty());
    }
}

fn device_hash(id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl Fleet {
    /// `POST /v1/telemetry` (see the module docs for the rules).
    pub async fn ingest(&self, token: &str, batch: TelemetryBatch) -> FleetResult<TelemetryAck> {
        let device = self.device_by_token(token).await?;
        let (device_id, class, channel) = {
            let d = lock(&device);
            let class = d
                .profile
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |p| p.device_class.clone());
            (d.id.clone(), class, d.channel.clone())
        };
        if batch.device_id != device_id {
            return Err(FleetError::Unauthorized(format!(
                "device_id {:?} is not the device of this token",
                batch.device_id.chars().take(64).collect::<String>()
            )));
        }
        if batch.events.len() > MAX_EVENTS {
            return Err(FleetError::TooLarge(format!(
                "{} events in one batch; at most {MAX_EVENTS}",
                batch.events.len()
            )));
        }
        batch
            .validate()
            .map_err(|e| FleetError::BadRequest(e.to_string()))?;
        let now = self.now().unix_seconds();
        let mut ack = TelemetryAck {
            batch_id: batch.batch_id.clone(),
            ..TelemetryAck::default()
        };
        let dh = device_hash(&device_id);
        if self.shared {
            // Counted in the database before the answer (shared.rs).
            let mut delta = shared::DeltaBuilder::new(self.rollup_before(now));
            {
                let state = self.state();
                let mut t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
                self.count_events(
                    &state,
                    &batch,
                    &class,
                    &channel,
                    now,
                    &mut ack,
                    |at, key, data| {
                        let drain = t.battery_drain(dh, data, at);
                        delta.add(at / 60, key, data, drain);
                    },
                );
            }
            let delta = delta.finish(dh);
            return if self.ingest_shared(&batch, delta.clone(), now).await? {
                let mut t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
                t.apply_delta(&delta);
                Ok(ack)
            } else {
                Ok(Self::duplicate_ack(&batch.batch_id))
            };
        }
        let state = self.state();
        let mut t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
        let id = (device_id.clone(), batch.batch_id.clone());
        if t.batches.contains_key(&id) {
            ack.duplicate = true;
            return Ok(ack);
        }
        let t = &mut *t;
        self.count_events(
            &state,
            &batch,
            &class,
            &channel,
            now,
            &mut ack,
            |at, key, data| {
                let minute = at / 60;
                let drain = t.battery_drain(dh, data, at);
                t.saw(key.clone(), dh, minute);
                if minute < t.rolled_before {
                    let hour = minute / 60 * 60;
                    t.dirty_hours.insert((hour, key.clone()));
                    t.hours
                        .entry(hour)
                        .or_default()
                        .entry(key)
                        .or_default()
                        .record_with(data, drain);
                } else {
                    t.dirty.insert((minute, key.clone()));
                    t.minutes
                        .entry(minute)
                        .or_default()
                        .entry(key)
                        .or_default()
                        .record_with(data, drain);
                }
            },
        );
        t.batches.insert(id, now);
        t.new_batches.push(BatchRecord {
            device_id,
            batch_id: batch.batch_id,
            received_at: now,
        });
        Ok(ack)
    }

    /// Calls `count` with (seconds, cohort, data) for each event of
    /// `batch` that counts, and notes in `ack` the ones that do not or are
    /// moved: stamped in the future (counted now), too old, or of a
    /// release the fleet never published.
    #[allow(clippy::too_many_arguments)]
    fn count_events(
        &self,
        state: &crate::state::FleetState,
        batch: &TelemetryBatch,
        class: &str,
        channel: &str,
        now: u64,
        ack: &mut TelemetryAck,
        mut count: impl FnMut(u64, CohortKey, &EventData),
    ) {
        let cfg = &self.config.telemetry;
        let oldest = now.saturating_sub(cfg.max_age_s);
        for e in &batch.events {
            let mut at = e.at.unix_seconds();
            if at > now.saturating_add(cfg.skew_tolerance_s) {
                at = now;
                ack.clamped += 1;
            } else if at < oldest {
                ack.too_old += 1;
                continue;
            }
            if state.release(&e.model, &e.model_version).is_none() {
                ack.unknown_release += 1;
                continue;
            }
            let key = CohortKey {
                device_class: class.to_string(),
                channel: channel.to_string(),
                model: e.model.clone(),
                model_version: e.model_version.clone(),
            };
            count(at, key, &e.data);
            ack.accepted += 1;
        }
    }

    /// Rows of aggregates in memory: (minutes, hours). Bounded by the
    /// roll-up: minutes cover about `rollup_after_s` plus an hour.
    pub fn telemetry_rows(&self) -> (usize, usize) {
        let t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
        let count = |m: &BTreeMap<u64, HashMap<CohortKey, Agg>>| m.values().map(HashMap::len).sum();
        (count(&t.minutes), count(&t.hours))
    }

    /// Every cohort with data in the last `minutes` minutes (the current
    /// one included), merged over that window.
    pub fn cohorts(&self, minutes: u64) -> Vec<CohortView> {
        let now_min = self.now().unix_seconds() / 60;
        let from = now_min.saturating_sub(minutes.max(1) - 1);
        let t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
        let mut merged: BTreeMap<&CohortKey, Agg> = BTreeMap::new();
        let hours = t.hours.range(from / 60 * 60..).map(|(_, c)| c);
        for cohorts in t.minutes.range(from..).map(|(_, c)| c).chain(hours) {
            for (key, agg) in cohorts {
                merged.entry(key).or_default().merge(agg);
            }
        }
        merged
            .into_iter()
            .map(|(key, agg)| {
                let devices = t.devices.get(key).map_or(0, |seen| {
                    seen.values().filter(|&&m| m >= from).count() as u64
                });
                CohortView::of(key.clone(), devices, agg)
            })
            .collect()
    }
}

/// One release's telemetry as a time series (`GET
/// /admin/v1/cohorts/series`): the cohorts it has merged per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeriesLine {
    pub model: String,
    pub model_version: String,
    pub points: Vec<SeriesPoint>,
}

/// One step of a [`SeriesLine`] (steps without data are left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    /// The step's first minute.
    pub at: Timestamp,
    pub inferences: u64,
    pub ttft_ms_p50: Option<f64>,
    pub tok_s_p50: Option<f64>,
    pub error_rate: f64,
    pub crash_rate: f64,
    pub canary_fail_rate: f64,
    pub thermal_hot: u64,
    /// Peak memory reported by the app, p95 (MiB).
    pub memory_peak_mib_p95: Option<f64>,
}

impl Fleet {
    /// Per release, the last `minutes` minutes in steps of `step` minutes
    /// (rolled-up hours fall in the step their hour starts in), only the
    /// cohorts of `class` and `channel` when given.
    pub fn cohort_series(
        &self,
        minutes: u64,
        step: u64,
        class: Option<&str>,
        channel: Option<&str>,
    ) -> Vec<SeriesLine> {
        let step = step.max(1);
        let now_min = self.now().unix_seconds() / 60;
        let from = now_min.saturating_sub(minutes.max(1) - 1);
        let t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines: BTreeMap<(ModelName, String), BTreeMap<u64, Agg>> = BTreeMap::new();
        let hours = t.hours.range(from / 60 * 60..);
        for (&minute, cohorts) in t.minutes.range(from..).chain(hours) {
            let bucket = from + (minute.max(from) - from) / step * step;
            for (key, agg) in cohorts {
                if class.is_some_and(|c| c != key.device_class)
                    || channel.is_some_and(|c| c != key.channel)
                {
                    continue;
                }
                lines
                    .entry((key.model.clone(), key.model_version.clone()))
                    .or_default()
                    .entry(bucket)
                    .or_default()
                    .merge(agg);
            }
        }
        lines
            .into_iter()
            .map(|((model, model_version), steps)| {
                let points = steps
                    .into_iter()
                    .map(|(minute, agg)| {
                        let key = CohortKey {
                            device_class: String::new(),
                            channel: String::new(),
                            model: model.clone(),
                            model_version: model_version.clone(),
                        };
                        let v = CohortView::of(key, 0, agg);
                        SeriesPoint {
                            at: Timestamp::from_unix_seconds(minute * 60),
                            inferences: v.agg.inferences,
                            ttft_ms_p50: v.ttft_ms_p50,
                            tok_s_p50: v.tok_s_p50,
                            error_rate: v.error_rate,
                            crash_rate: v.crash_rate,
                            canary_fail_rate: v.canary_fail_rate,
                            thermal_hot: v.agg.thermal_hot,
                            memory_peak_mib_p95: v.memory_peak_mib_p95,
                        }
                    })
                    .collect();
                SeriesLine {
                    model: model.to_string(),
                    model_version,
                    points,
                }
            })
            .collect()
    }
}
