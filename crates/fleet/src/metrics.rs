//! The fleet's Prometheus metrics (`GET /metrics`, through `outpost-web`,
//! which adds HTTP counts and latency per route): check-ins, manifests
//! served, telemetry events accepted and rejected, rollout state changes,
//! and the latency of every storage call per operation ([`TimedDb`] wraps
//! whichever [`Db`] backend runs, so no backend needs to know).

use std::sync::Arc;
use std::time::Instant;

use outpost_web::metrics::{latency_family, Labels, LatencyFamily};
use outpost_web::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::db::{AuditRecord, Db, DbFuture, DeviceWrite, Snapshot};
use crate::state::Change;
use crate::telemetry::TelemetryRows;

/// Counters the fleet's logic and handlers update.
#[derive(Debug, Clone)]
pub struct FleetMetrics {
    pub check_ins: Counter,
    pub manifests: Counter,
    /// By `outcome`: accepted, too_old, unknown_release, duplicate, refused
    /// (in a batch answered with an error: bad input, wrong token, too large).
    pub telemetry_events: Family<Labels, Counter>,
    /// By the state a rollout entered: active, paused, completed, ...
    pub rollout_changes: Family<Labels, Counter>,
    /// Storage calls by `op`.
    pub db_latency: LatencyFamily,
}

impl Default for FleetMetrics {
    fn default() -> Self {
        FleetMetrics {
            check_ins: Counter::default(),
            manifests: Counter::default(),
            telemetry_events: Family::default(),
            rollout_changes: Family::default(),
            db_latency: latency_family(),
        }
    }
}

impl FleetMetrics {
    /// The exposition: these plus HTTP counts and latency per route.
    pub fn exposition(&self) -> Metrics {
        let mut m = Metrics::new("outpost_fleet");
        let r = m.registry();
        r.register(
            "outpost_fleet_check_ins",
            "Device check-ins answered",
            self.check_ins.clone(),
        );
        r.register(
            "outpost_fleet_manifests_served",
            "Signed model manifests sent in check-in answers",
            self.manifests.clone(),
        );
        r.register(
            "outpost_fleet_telemetry_events",
            "Telemetry events received, by outcome (accepted, too_old, unknown_release, duplicate, refused)",
            self.telemetry_events.clone(),
        );
        r.register(
            "outpost_fleet_rollout_state_changes",
            "Rollouts entering a state (created active, paused, resumed, completed, rolled back), by the state entered",
            self.rollout_changes.clone(),
        );
        r.register(
            "outpost_fleet_db_query_duration_seconds",
            "Storage calls by operation, start to result",
            self.db_latency.clone(),
        );
        m
    }

    pub fn telemetry(&self, outcome: &str, events: u32) {
        if events > 0 {
            self.telemetry_events
                .get_or_create(&vec![("outcome", outcome.to_string())])
                .inc_by(u64::from(events));
        }
    }

    pub fn rollout_entered(&self, state: &str) {
        self.rollout_changes
            .get_or_create(&vec![("state", state.to_string())])
            .inc();
    }
}

/// A [`Db`] that times every call of the one it wraps.
pub struct TimedDb {
    inner: Arc<dyn Db>,
    latency: LatencyFamily,
}

impl TimedDb {
    pub fn new(inner: Arc<dyn Db>, latency: LatencyFamily) -> TimedDb {
        TimedDb { inner, latency }
    }

    fn timed<'a, T: Send + 'a>(&'a self, op: &'static str, f: DbFuture<'a, T>) -> DbFuture<'a, T> {
        Box::pin(async move {
            let started = Instant::now();
            let r = f.await;
            self.latency
                .get_or_create(&vec![("op", op.to_string())])
                .observe(started.elapsed().as_secs_f64());
            r
        })
    }
}

impl Db for TimedDb {
    fn load(&self) -> DbFuture<'_, Snapshot> {
        self.timed("load", self.inner.load())
    }
    fn commit(&self, changes: Vec<Change>, audit: AuditRecord) -> DbFuture<'_, u64> {
        self.timed("commit", self.inner.commit(changes, audit))
    }
    fn write_devices(&self, writes: Vec<DeviceWrite>) -> DbFuture<'_, ()> {
        self.timed("write_devices", self.inner.write_devices(writes))
    }
    fn reserve_versions(&self, block: u64) -> DbFuture<'_, u64> {
        self.timed("reserve_versions", self.inner.reserve_versions(block))
    }
    fn changes_since(&self, after: u64) -> DbFuture<'_, Vec<(u64, Vec<Change>)>> {
        self.timed("changes_since", self.inner.changes_since(after))
    }
    fn last_change(&self) -> DbFuture<'_, u64> {
        self.timed("last_change", self.inner.last_change())
    }
    fn lease(
        &self,
        name: String,
        holder: String,
        now: u64,
        ttl_s: u64,
    ) -> DbFuture<'_, Option<u64>> {
        self.timed("lease", self.inner.lease(name, holder, now, ttl_s))
    }
    fn admin_lock(&self) -> DbFuture<'_, Option<crate::db::AdminLock>> {
        self.timed("admin_lock", self.inner.admin_lock())
    }
    fn load_device(
        &self,
        by: crate::db::DeviceKey,
    ) -> DbFuture<'_, Option<crate::db::StoredDevice>> {
        self.timed("load_device", self.inner.load_device(by))
    }
    fn audit_log(&self, limit: u32, before: Option<u64>) -> DbFuture<'_, Vec<AuditRecord>> {
        self.timed("audit_log", self.inner.audit_log(limit, before))
    }
    fn write_telemetry(
        &self,
        rows: TelemetryRows,
        rolled_before_minute: u64,
        forget_before_s: u64,
    ) -> DbFuture<'_, ()> {
        self.timed(
            "write_telemetry",
            self.inner
                .write_telemetry(rows, rolled_before_minute, forget_before_s),
        )
    }
    fn load_telemetry(&self, since_s: u64) -> DbFuture<'_, TelemetryRows> {
        self.timed("load_telemetry", self.inner.load_telemetry(since_s))
    }
    fn ingest_telemetry(
        &self,
        batch: crate::telemetry::BatchRecord,
        delta: crate::telemetry::shared::TelemetryDelta,
    ) -> DbFuture<'_, bool> {
        self.timed(
            "ingest_telemetry",
            self.inner.ingest_telemetry(batch, delta),
        )
    }
    fn roll_up_telemetry(&self, before_minute: u64, forget_before_s: u64) -> DbFuture<'_, ()> {
        self.timed(
            "roll_up_telemetry",
            self.inner.roll_up_telemetry(before_minute, forget_before_s),
        )
    }
    fn telemetry_changes(
        &self,
        from: u64,
    ) -> DbFuture<'_, crate::telemetry::shared::TelemetryChanges> {
        self.timed("telemetry_changes", self.inner.telemetry_changes(from))
    }
}
