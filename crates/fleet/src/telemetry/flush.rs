//! The single fleet's telemetry persistence: aggregates kept in memory
//! and written through the database every tick (the changed minutes and
//! hours and the new batch ids in one transaction), old minutes rolled
//! into hours on the way. Replicas sharing a database use `shared.rs`
//! instead.

use super::{MinuteRow, Telemetry, TelemetryRows};
use crate::error::FleetResult;
use crate::Fleet;

impl Telemetry {
    /// Merges every minute before `before` (an hour's first minute) into
    /// its hour.
    fn roll_up(&mut self, before: u64) {
        let keep = self.minutes.split_off(&before);
        let old = std::mem::replace(&mut self.minutes, keep);
        for (minute, cohorts) in old {
            let hour = minute / 60 * 60;
            for (key, agg) in cohorts {
                self.dirty_hours.insert((hour, key.clone()));
                self.hours
                    .entry(hour)
                    .or_default()
                    .entry(key)
                    .or_default()
                    .merge(&agg);
            }
        }
        self.rolled_before = self.rolled_before.max(before);
    }

    /// The changed rows of minutes (or hours) still in memory.
    fn take_dirty(&mut self, hours: bool) -> Vec<MinuteRow> {
        let (dirty, map) = if hours {
            (std::mem::take(&mut self.dirty_hours), &self.hours)
        } else {
            (std::mem::take(&mut self.dirty), &self.minutes)
        };
        dirty
            .into_iter()
            .filter_map(|(minute, key)| {
                let agg = map.get(&minute)?.get(&key)?.clone();
                Some(MinuteRow { minute, key, agg })
            })
            .collect()
    }
}

impl Fleet {
    /// Rolls up the hours that ended more than `rollup_after_s` ago, then
    /// writes the minutes and hours changed since the last flush and the
    /// new batch ids in one transaction (deleting the rolled minutes), and
    /// forgets what is older than `max_age_s`.
    /// Where replicas share the database, nothing waits in memory: this
    /// rolls up and refreshes the cache instead (`shared.rs`).
    pub async fn flush_telemetry(&self) -> FleetResult<()> {
        if self.shared {
            return self.refresh_shared_telemetry().await;
        }
        let _g = self.telemetry_flush.lock().await;
        let now = self.now().unix_seconds();
        let cfg = &self.config.telemetry;
        let oldest_s = now.saturating_sub(cfg.max_age_s);
        let (rows, rolled_before) = {
            let mut t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
            t.prune(oldest_s / 60, oldest_s);
            t.roll_up(now.saturating_sub(cfg.rollup_after_s) / 3600 * 60);
            let rows = TelemetryRows {
                minutes: t.take_dirty(false),
                hours: t.take_dirty(true),
                batches: std::mem::take(&mut t.new_batches),
            };
            (rows, t.rolled_before)
        };
        if rows == TelemetryRows::default() {
            return Ok(());
        }
        if let Err(e) = self
            .db
            .write_telemetry(rows.clone(), rolled_before, oldest_s)
            .await
        {
            // Try again next time.
            let mut t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
            t.dirty
                .extend(rows.minutes.into_iter().map(|r| (r.minute, r.key)));
            t.dirty_hours
                .extend(rows.hours.into_iter().map(|r| (r.minute, r.key)));
            t.new_batches.extend(rows.batches);
            return Err(e.into());
        }
        Ok(())
    }
}
