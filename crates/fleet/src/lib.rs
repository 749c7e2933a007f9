//! The fleet control plane: it decides which variant of which model every
//! device runs, and tells each device in a signed manifest. It records
//! artifacts, it does not build them: no ML code is linked.
//!
//! - registry: releases (a model version with its GGUF variants and the
//!   runtime config per device class, [`meta::ReleaseMeta`]) and their blobs
//!   in an [`outpost_store::Store`], served with HTTP Range;
//! - devices register with an app key and check in with a profile; the
//!   answer holds a signed manifest per model ([`checkin`], [`assign`]);
//! - channels, staged rollouts with sticky bucketing and targeting, pins,
//!   revocation and a kill switch ([`rollout`], [`admin`]);
//! - device telemetry: batches ingested, aggregated per cohort and minute
//!   into mergeable histograms ([`telemetry`], [`hist`]), and the automatic
//!   halt of a rollout whose cohort regresses ([`health`]);
//! - the edge-vs-cloud cost report from route telemetry ([`economics`]);
//! - A/B experiments between two releases, with always-valid intervals
//!   per class and metric ([`experiment`], [`stats`]);
//! - storage behind the [`db::Db`] trait (SQLite by default, PostgreSQL by URL), an audit log of
//!   every admin action, and an axum router ([`http::router`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), outpost_fleet::FleetError> {
//! use outpost_fleet::{Fleet, FleetConfig, SystemClock};
//! let fleet = Fleet::open(FleetConfig::new("fleet-data"), std::sync::Arc::new(SystemClock)).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8700").await
//!     .map_err(|e| outpost_fleet::FleetError::Internal(e.to_string()))?;
//! outpost_fleet::serve(listener, fleet, std::future::pending()).await
//! # }
//! ```

pub mod access;
pub mod accounts;
pub mod admin;
pub mod api;
pub mod apps;
pub mod assign;
pub mod blobs;
pub mod checkin;
pub mod content_keys;
pub mod db;
pub mod economics;
pub mod error;
pub mod experiment;
pub mod fragmentation;
pub mod health;
pub mod hist;
pub mod http;
pub mod keys;
pub mod meta;
pub mod metrics;
pub mod replicas;
pub mod rollout;
pub mod route_agg;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod views;
mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use outpost_protocol::{Digest, Timestamp};
use outpost_store::Store;

pub use error::{FleetError, FleetResult};
pub use http::router;

use db::sql::SqlDb;
use db::Db;
use keys::{secret_hash, Signer};
use state::Change;
use state::{Channel, Device, Devices, FleetState, BUILTIN_CHANNELS};
use writer::Writer;

/// How a fleet runs. Defaults in [`FleetConfig::new`].
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Holds `fleet.db` (unless `db` says otherwise), `store/` and the key
    /// files (see `keys.rs`).
    pub data_dir: PathBuf,
    /// The database; `None`: SQLite in `DATA_DIR/fleet.db`.
    pub db: Option<db::DbUrl>,
    /// Where blobs live; `None`: the folder `DATA_DIR/store`.
    pub blobs: Option<blobs::BlobsUrl>,
    /// The admin API's bearer token; `None`: `DIR/admin.token` (created on
    /// first start). The CLI reads it from `OUTPOST_FLEET_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// Lifetime of a manifest (default 7 days); a device refuses an expired
    /// one, and the fleet re-signs once half of it has passed.
    pub manifest_ttl_s: u64,
    /// The check-in interval told to devices (default 3600 s).
    pub check_in_interval_s: u64,
    /// How often the soak timer looks for rollouts to advance (default 1 s).
    pub tick: Duration,
    /// Largest blob the admin API accepts (default 64 GiB).
    pub max_blob_bytes: u64,
    /// Telemetry limits (clock skew, age).
    pub telemetry: telemetry::TelemetryConfig,
    /// When a rollout halts by itself.
    pub halt: health::HaltPolicy,
    /// Caps each artifact download (`GET /v1/artifacts/{digest}`) to this
    /// many bytes per second; `None` (default): as fast as the link goes.
    /// For tests that need a download to take a while (crash tests of the
    /// device agent).
    pub throttle_bytes_per_s: Option<u64>,
    /// Every release must be sealed (`outpost fleet publish --encrypt`,
    /// #23): the CLI seals by default and a plain release is refused.
    pub seal_releases: bool,
    /// Clients reach the fleet over HTTPS (a TLS proxy in front): console
    /// session cookies are marked Secure.
    pub secure_cookies: bool,
}

impl FleetConfig {
    /// The database this fleet opens.
    pub fn db_url(&self) -> db::DbUrl {
        self.db
            .clone()
            .unwrap_or_else(|| db::DbUrl::default_in(&self.data_dir))
    }

    /// Where this fleet keeps blobs.
    pub fn blobs_url(&self) -> blobs::BlobsUrl {
        self.blobs
            .clone()
            .unwrap_or_else(|| blobs::BlobsUrl::File(self.data_dir.join("store")))
    }

    pub fn new(data_dir: impl Into<PathBuf>) -> FleetConfig {
        FleetConfig {
            data_dir: data_dir.into(),
            db: None,
            blobs: None,
            admin_token: None,
            manifest_ttl_s: 7 * 24 * 3600,
            check_in_interval_s: 3600,
            tick: Duration::from_secs(1),
            max_blob_bytes: 64 << 30,
            telemetry: telemetry::TelemetryConfig::default(),
            halt: health::HaltPolicy::default(),
            throttle_bytes_per_s: None,
            seal_releases: false,
            secure_cookies: false,
        }
    }
}

/// "Now", injectable so tests can move time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Timestamp::from_unix_seconds(secs)
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(unix_seconds: u64) -> ManualClock {
        ManualClock(AtomicU64::new(unix_seconds))
    }
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_seconds(self.0.load(Ordering::SeqCst))
    }
}

/// Manifest versions: one counter per process, so they rise per device and
/// model whatever happens (rollback included). Blocks are reserved in the
/// database ahead of use, atomically, so replicas draw disjoint blocks and a
/// restart continues above the last reservation, never below anything
/// issued. A device that moves between replicas still sees its versions
/// rise: a new manifest is numbered above the device's last one too.
struct Versions {
    next: AtomicU64,
    reserved: AtomicU64,
    reserving: tokio::sync::Mutex<()>,
}

const VERSION_BLOCK: u64 = 1_000_000;

impl Versions {
    async fn ensure_headroom(&self, db: &dyn Db) -> FleetResult<()> {
        if self.next.load(Ordering::SeqCst) + VERSION_BLOCK / 2
            < self.reserved.load(Ordering::SeqCst)
        {
            return Ok(());
        }
        let _g = self.reserving.lock().await;
        let reserved = self.reserved.load(Ordering::SeqCst);
        if self.next.load(Ordering::SeqCst) + VERSION_BLOCK / 2 < reserved {
            return Ok(());
        }
        // A block of its own, whatever other replicas reserved meanwhile.
        let upto = db.reserve_versions(VERSION_BLOCK).await?;
        let start = upto.saturating_sub(VERSION_BLOCK) + 1;
        self.next.fetch_max(start, Ordering::SeqCst);
        self.reserved.store(upto, Ordering::SeqCst);
        Ok(())
    }

    fn next(&self) -> FleetResult<u64> {
        let v = self.next.fetch_add(1, Ordering::SeqCst);
        if v > self.reserved.load(Ordering::SeqCst) {
            return Err(FleetError::Internal(
                "manifest versions ran out of their reserved block; try again".into(),
            ));
        }
        Ok(v)
    }
}

/// The control plane: state in memory, the database behind it, the blob
/// store and the signer. Shared as `Arc<Fleet>`.
pub struct Fleet {
    config: FleetConfig,
    clock: Arc<dyn Clock>,
    db: Arc<dyn Db>,
    blobs: blobs::Blobs,
    signer: Signer,
    admin_token_hash: Digest,
    state: RwLock<FleetState>,
    devices: RwLock<Devices>,
    /// Serialises admin changes (validate → commit → apply).
    admin_lock: tokio::sync::Mutex<()>,
    /// Several replicas may share the database (PostgreSQL): admin changes
    /// take the database's admin lock, devices are read back per request,
    /// background work needs the lease.
    shared: bool,
    /// This process, as a lease holder.
    replica_id: String,
    /// The change-log position replayed into memory.
    applied: AtomicU64,
    versions: Versions,
    writer: Writer,
    app_key: String,
    telemetry: std::sync::Mutex<telemetry::Telemetry>,
    /// One flush at a time, so an older image never overwrites a newer.
    telemetry_flush: tokio::sync::Mutex<()>,
    metrics: metrics::FleetMetrics,
    /// Content-key requests per device this minute.
    grants: content_keys::GrantCounter,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("data_dir", &self.config.data_dir)
            .field("key_id", &self.signer.key_id())
            .finish_non_exhaustive()
    }
}

/// A device as loaded, as kept in memory.
pub(crate) fn device_from(d: db::StoredDevice) -> Device {
    Device {
        id: d.new.id,
        token_hash: d.new.token_hash,
        app: d.new.app,
        channel: d.new.channel,
        registered_at: d.new.registered_at,
        public_key: d.new.public_key,
        revoked_at: d.revoked_at,
        last_seen_at: d.last_seen_at,
        profile: d.profile,
        pins: d.pins.into_iter().collect(),
        issued: d.issued.into_iter().map(|i| (i.model.clone(), i)).collect(),
        first_issued: d
            .first_issued
            .into_iter()
            .map(|(m, v, at)| ((m, v), at))
            .collect(),
        blocked: d.blocked,
    }
}

impl Fleet {
    /// Opens the data folder (creating what is missing), migrates the
    /// database, loads everything into memory and starts the device writer.
    /// Needs a tokio runtime.
    pub async fn open(config: FleetConfig, clock: Arc<dyn Clock>) -> FleetResult<Arc<Fleet>> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| FleetError::io("create", dir, e))?;
        let blobs = blobs::Blobs::open(&config.blobs_url()).await?;
        let signer = Signer::load_or_create(dir)?;
        let admin_token = match &config.admin_token {
            Some(t) if t.len() >= 16 => t.clone(),
            Some(_) => {
                return Err(FleetError::Config(
                    "the admin token must be at least 16 characters".into(),
                ))
            }
            None => keys::load_or_create_token(&dir.join(keys::ADMIN_TOKEN_FILE), "opa_")?,
        };
        let fleet_metrics = metrics::FleetMetrics::default();
        let sql_db = SqlDb::open(&config.db_url()).await?;
        let shared = sql_db.dialect() == db::sql::Dialect::Postgres;
        let db: Arc<dyn Db> = Arc::new(metrics::TimedDb::new(
            Arc::new(sql_db),
            fleet_metrics.db_latency.clone(),
        ));
        let replica_id = {
            let mut b = [0u8; 8];
            getrandom::getrandom(&mut b)
                .map_err(|e| FleetError::Internal(format!("no randomness: {e}")))?;
            format!("replica-{}", hex::encode(b))
        };
        let app_key = keys::load_or_create_token(&dir.join(keys::APP_KEY_FILE), "opk_")?;
        let snap = db.load().await?;
        let snap_applied = snap.change_log_position;
        let now = clock.now();

        let mut state = FleetState::default();
        for r in snap.releases {
            state.apply(&Change::PutRelease(r));
        }
        for c in snap.channels {
            state.channels.insert(c.name.clone(), c);
        }
        for r in snap.rollouts {
            state.rollouts.insert(r.id, r);
        }
        state.frozen = snap.frozen;
        state.app_keys = snap.app_keys.into_iter().collect();
        state.content_keys = snap.content_keys.into_iter().collect();
        state.accounts = snap.accounts;
        let mut devices = Devices::default();
        for d in snap.devices {
            devices.insert(device_from(d));
        }
        let reserved = snap.version_reserved;
        // Replicas sharing the database fill their cache from it below.
        let rows = if shared {
            telemetry::TelemetryRows::default()
        } else {
            db.load_telemetry(
                now.unix_seconds()
                    .saturating_sub(config.telemetry.max_age_s),
            )
            .await?
        };
        let fleet = Fleet {
            writer: Writer::spawn(db.clone()),
            config,
            clock,
            db,
            blobs,
            signer,
            admin_token_hash: secret_hash(&admin_token),
            state: RwLock::new(state),
            devices: RwLock::new(devices),
            admin_lock: tokio::sync::Mutex::new(()),
            shared,
            replica_id,
            applied: AtomicU64::new(snap_applied),
            versions: Versions {
                next: AtomicU64::new(reserved + 1),
                reserved: AtomicU64::new(reserved),
                reserving: tokio::sync::Mutex::new(()),
            },
            app_key,
            telemetry: std::sync::Mutex::new(telemetry::Telemetry::load(rows)),
            telemetry_flush: tokio::sync::Mutex::new(()),
            grants: content_keys::GrantCounter::default(),
            metrics: fleet_metrics,
        };
        // First start: the built-in channels and the first app key.
        let mut first = Vec::new();
        for name in BUILTIN_CHANNELS {
            if !fleet.state().channels.contains_key(name) {
                first.push(Change::PutChannel {
                    name: name.into(),
                    created_at: now,
                });
            }
        }
        let app_hash = secret_hash(&fleet.app_key);
        if !fleet.state().app_keys.contains_key(&app_hash) {
            first.push(Change::PutAppKey {
                hash: app_hash,
                label: "first".into(),
                created_at: now,
                app: access::default_app(),
            });
        }
        if !first.is_empty() {
            fleet
                .apply_admin(
                    "system",
                    "fleet.init",
                    "fleet".into(),
                    serde_json::json!({}),
                    first,
                )
                .await?;
        }
        fleet.versions.ensure_headroom(fleet.db.as_ref()).await?;
        if fleet.shared {
            fleet.flush_telemetry().await?;
        }
        Ok(Arc::new(fleet))
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The counters behind `GET /metrics`.
    pub fn metrics(&self) -> &metrics::FleetMetrics {
        &self.metrics
    }

    /// Where blobs live.
    pub fn blobs(&self) -> &blobs::Blobs {
        &self.blobs
    }

    /// The local blob store, when blobs are in a folder (the default);
    /// `None` with S3.
    pub fn local_store(&self) -> Option<&Arc<Store>> {
        match &self.blobs {
            blobs::Blobs::Local(s) => Some(s),
            blobs::Blobs::S3(_) => None,
        }
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The app key written to `DIR/app.key` on first start.
    pub fn app_key(&self) -> &str {
        &self.app_key
    }

    /// Whether `token` is the admin token (compared as SHA-256 digests, so
    /// the time taken says nothing about the token).
    pub fn is_admin(&self, token: &str) -> bool {
        secret_hash(token) == self.admin_token_hash
    }

    pub(crate) fn state(&self) -> RwLockReadGuard<'_, FleetState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn devices(&self) -> RwLockReadGuard<'_, Devices> {
        self.devices.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The device a bearer token belongs to, or 401. With a shared
    /// database the device is read back first: another replica may have
    /// registered it or issued it a manifest since.
    pub(crate) async fn device_by_token(&self, token: &str) -> FleetResult<state::DeviceRef> {
        let hash = keys::secret_hash(token);
        if self.shared {
            if let Some(d) = self.db.load_device(db::DeviceKey::TokenHash(hash)).await? {
                self.devices_mut().insert(device_from(d));
            }
        }
        self.devices().by_token(&hash).cloned().ok_or_else(|| {
            FleetError::Unauthorized(
                "device token is not known to this fleet; register again".into(),
            )
        })
    }

    pub(crate) fn devices_mut(&self) -> RwLockWriteGuard<'_, Devices> {
        self.devices.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits admin changes with their audit record, then applies them in
    /// memory. Callers hold `admin_lock` while they validate and call this.
    pub(crate) async fn apply_admin(
        &self,
        actor: &str,
        action: &str,
        target: String,
        mut detail: serde_json::Value,
        changes: Vec<Change>,
    ) -> FleetResult<()> {
        // Where the request came from, when it came over HTTP.
        if let (Ok(from), Some(d)) = (AUDIT_FROM.try_with(Clone::clone), detail.as_object_mut()) {
            d.entry("from").or_insert(serde_json::Value::String(from));
        }
        let audit = db::AuditRecord {
            id: 0,
            at: self.now(),
            actor: actor.to_string(),
            action: action.to_string(),
            target,
            detail,
        };
        let id = self.db.commit(changes.clone(), audit).await?;
        self.committed(id, &changes).await
    }

    /// Applies committed changes to the state in memory.
    fn apply_in_memory(&self, changes: &[Change]) {
        {
            let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
            for c in changes {
                if let Change::PutRollout(r) = c {
                    if s.rollouts.get(&r.id).map(|old| old.state) != Some(r.state) {
                        self.metrics.rollout_entered(r.state.as_str());
                    }
                }
                s.apply(c);
            }
        }
        let d = self.devices();
        for c in changes {
            d.apply(c);
        }
    }

    /// Channels by name, for the admin views.
    pub fn channels(&self) -> Vec<Channel> {
        self.state().channels.values().cloned().collect()
    }
}

tokio::task_local! {
    /// The client address of the admin request being served: every audit
    /// record it writes says where it came from (`detail.from`).
    pub(crate) static AUDIT_FROM: String;
}

/// Serves the fleet's API on `listener` until `shutdown` resolves, with the
/// soak timer running every `config.tick`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    fleet: Arc<Fleet>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> FleetResult<()> {
    let ticker = {
        let fleet = fleet.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(fleet.config.tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = fleet.tick().await {
                    tracing::error!(error = %e, "fleet: soak timer");
                }
            }
        })
    };
    // The client's address goes into the audit log of logins.
    let app = router(fleet).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(outpost_web::no_delay(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| FleetError::Internal(format!("server stopped: {e}")));
    ticker.abort();
    result
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared test values.
    use outpost_protocol::fleet::DeviceProfile;

    pub fn profile() -> DeviceProfile {
        serde_json::from_value(serde_json::json!({
            "device_class": "phone-8gb", "ram_bytes": 8_000_000_000u64, "os": "android",
            "app_version": "2.3.0", "engine_version": "0.1.0",
            "ggml_types": ["f32", "f16", "q4_0", "q8_0"], "region": "eu-west",
            "free_disk_bytes": 4_000_000_000u64
        }))
        .expect("profile")
    }
}
