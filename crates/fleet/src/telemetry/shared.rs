//! Telemetry where replicas share one database (#21). A batch is merged
//! into its minute (or hour) rows and its device sightings in the very
//! transaction that records its id, before the device is told it was
//! taken: a replica killed at any moment loses no acknowledged event, and
//! a batch sent to two replicas is counted once. Each replica's in-memory
//! aggregates are then a cache, refreshed every tick with the rows written
//! since its last look ([`TelemetryChanges`]); the views read the cache as
//! on a single fleet (a replica adds its own batches at once). The roll-up of old minutes into hours, and
//! forgetting what is past `max_age_s`, run on one replica at a time
//! (the database lets one in; the others skip).

use std::collections::BTreeMap;

use outpost_protocol::telemetry::{EventData, TelemetryAck, TelemetryBatch};

use super::{Agg, BatchRecord, CohortKey, MinuteRow, Telemetry};
use crate::error::FleetResult;
use crate::Fleet;

/// A device seen reporting for a cohort, as a hash of its id, up to
/// `minute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub key: CohortKey,
    pub device: u64,
    pub minute: u64,
}

/// What one batch adds: aggregates to merge into minute rows and hour
/// rows (events older than the roll-up go to their hour), and sightings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryDelta {
    pub minutes: Vec<MinuteRow>,
    pub hours: Vec<MinuteRow>,
    pub sightings: Vec<Sighting>,
}

/// Rows written since a position (whole rows, to replace the cached
/// ones), the roll-up mark, and the position to ask from next time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryChanges {
    pub minutes: Vec<MinuteRow>,
    pub hours: Vec<MinuteRow>,
    pub sightings: Vec<Sighting>,
    /// Minutes before this one are in the hours.
    pub rolled_before: u64,
    pub next_from: u64,
}

impl Telemetry {
    /// Adds a batch this replica wrote to its cache at once (read your own
    /// writes; the next refresh replaces these rows with the database's,
    /// which hold the batch too).
    pub(crate) fn apply_delta(&mut self, d: &TelemetryDelta) {
        for (map, rows) in [(&mut self.minutes, &d.minutes), (&mut self.hours, &d.hours)] {
            for r in rows {
                map.entry(r.minute)
                    .or_default()
                    .entry(r.key.clone())
                    .or_default()
                    .merge(&r.agg);
            }
        }
        for s in &d.sightings {
            self.saw(s.key.clone(), s.device, s.minute);
        }
    }

    /// Replaces cached rows with `c`'s, drops minutes rolled into hours,
    /// and notes where to ask from next.
    pub(crate) fn apply_changes(&mut self, c: TelemetryChanges) {
        for r in c.minutes {
            self.minutes
                .entry(r.minute)
                .or_default()
                .insert(r.key, r.agg);
        }
        for r in c.hours {
            self.hours.entry(r.minute).or_default().insert(r.key, r.agg);
        }
        for s in c.sightings {
            self.saw(s.key, s.device, s.minute);
        }
        if c.rolled_before > self.rolled_before {
            self.rolled_before = c.rolled_before;
        }
        self.minutes = self.minutes.split_off(&self.rolled_before);
        self.refreshed_from = c.next_from;
    }
}

/// Builds one batch's [`TelemetryDelta`], event by event.
pub(super) struct DeltaBuilder {
    /// Events before this minute go to their hour.
    before: u64,
    minutes: BTreeMap<(u64, CohortKey), Agg>,
    hours: BTreeMap<(u64, CohortKey), Agg>,
    seen: BTreeMap<CohortKey, u64>,
}

impl DeltaBuilder {
    pub(super) fn new(rollup_before: u64) -> DeltaBuilder {
        DeltaBuilder {
            before: rollup_before,
            minutes: BTreeMap::new(),
            hours: BTreeMap::new(),
            seen: BTreeMap::new(),
        }
    }

    pub(super) fn add(&mut self, minute: u64, key: CohortKey, data: &EventData, drain: u64) {
        let last = self.seen.entry(key.clone()).or_insert(minute);
        *last = (*last).max(minute);
        let (map, at) = if minute < self.before {
            (&mut self.hours, minute / 60 * 60)
        } else {
            (&mut self.minutes, minute)
        };
        map.entry((at, key)).or_default().record_with(data, drain);
    }

    /// The delta, rows in key order (the order the database locks them
    /// in, the same for every batch, so two batches never deadlock).
    pub(super) fn finish(self, device: u64) -> TelemetryDelta {
        let rows = |m: BTreeMap<(u64, CohortKey), Agg>| {
            m.into_iter()
                .map(|((minute, key), agg)| MinuteRow { minute, key, agg })
                .collect()
        };
        TelemetryDelta {
            minutes: rows(self.minutes),
            hours: rows(self.hours),
            sightings: self
                .seen
                .into_iter()
                .map(|(key, minute)| Sighting {
                    key,
                    device,
                    minute,
                })
                .collect(),
        }
    }
}

impl Fleet {
    /// Writes a batch's delta with its id; `false` when another replica
    /// (or an earlier try) already counted the batch.
    pub(super) async fn ingest_shared(
        &self,
        batch: &TelemetryBatch,
        delta: TelemetryDelta,
        now: u64,
    ) -> FleetResult<bool> {
        let record = BatchRecord {
            device_id: batch.device_id.clone(),
            batch_id: batch.batch_id.clone(),
            received_at: now,
        };
        Ok(self.db.ingest_telemetry(record, delta).await?)
    }

    /// The first minute not yet rolled into hours at `now`: that of the
    /// hour that ended more than `rollup_after_s` ago.
    pub(super) fn rollup_before(&self, now: u64) -> u64 {
        now.saturating_sub(self.config.telemetry.rollup_after_s) / 3600 * 60
    }

    /// Each tick where the database is shared: roll old minutes into hours
    /// (one replica at a time) and refresh this replica's cache.
    pub(crate) async fn refresh_shared_telemetry(&self) -> FleetResult<()> {
        let now = self.now().unix_seconds();
        let forget = now.saturating_sub(self.config.telemetry.max_age_s);
        self.db
            .roll_up_telemetry(self.rollup_before(now), forget)
            .await?;
        let _g = self.telemetry_flush.lock().await;
        let from = self
            .telemetry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refreshed_from;
        let changes = self.db.telemetry_changes(from).await?;
        let mut t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
        t.apply_changes(changes);
        t.prune(forget / 60, forget);
        Ok(())
    }

    /// The answer to a batch counted before.
    pub(super) fn duplicate_ack(batch_id: &str) -> TelemetryAck {
        TelemetryAck {
            batch_id: batch_id.to_string(),
            duplicate: true,
            ..TelemetryAck::default()
        }
    }
}
