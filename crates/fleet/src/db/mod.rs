//! The fleet's storage, behind one trait: [`Db`]. Every SQL statement of
//! the crate lives under this module (`sql.rs` and its siblings, one set of
//! queries for SQLite and PostgreSQL, chosen by [`DbUrl`]); handlers and
//! the fleet logic speak in [`Change`]s and [`DeviceWrite`]s and do not know
//! which database they run on. Storage depends on the domain's types
//! (`state`, `telemetry`, `rollout`), never the reverse.
//!
//! Writes come in two kinds:
//! - admin changes: [`Db::commit`] writes a list of changes and their audit
//!   record in one transaction, before anything in memory changes;
//! - device writes (registration, check-in): [`Db::write_devices`] writes a
//!   batch in one transaction; the group-commit writer (`writer.rs`) fills
//!   the batches from concurrent requests.

mod codec;
pub mod copy;
pub mod error;
pub mod sql;
mod sql_accounts;
mod sql_load;
mod sql_replicas;
mod sql_telemetry;
mod sql_telemetry_shared;
mod url;

use std::future::Future;
use std::pin::Pin;

use outpost_protocol::fleet::{Blocked, DeviceProfile};
use outpost_protocol::manifest::ModelName;
use outpost_protocol::{Digest, Timestamp};
use serde::{Deserialize, Serialize};

pub use error::{DbError, DbResult};
pub use url::DbUrl;

use crate::rollout::Rollout;
use crate::state::{Change, Channel, Freeze, Issued, Release};
use crate::telemetry::shared::{TelemetryChanges, TelemetryDelta};
use crate::telemetry::{BatchRecord, TelemetryRows};

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Assigned by the database; 0 before.
    #[serde(default)]
    pub id: u64,
    pub at: Timestamp,
    /// `admin` (or the `X-Outpost-Actor` header), `system` for the soak timer.
    pub actor: String,
    /// e.g. `rollout.advance`, `release.publish`.
    pub action: String,
    /// What it acted on, e.g. `rollout/3`, `smollm2-135m@2025-06`.
    pub target: String,
    pub detail: serde_json::Value,
}

/// A new device, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub id: String,
    pub token_hash: Digest,
    /// The app it registered for (its app key's).
    pub app: String,
    pub channel: String,
    pub registered_at: Timestamp,
    /// X25519, for sealed models' content keys (`None` from older agents).
    pub public_key: Option<[u8; 32]>,
}

/// What one request changes about devices. Short-lived (one batch), so
/// the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceWrite {
    Register(NewDevice),
    CheckIn {
        device_id: String,
        at: Timestamp,
        /// Only when it differs from the stored one.
        profile: Option<DeviceProfile>,
        /// Only when it differs from the stored one (model → releases).
        blocked: Option<std::collections::BTreeMap<ModelName, Vec<Blocked>>>,
        /// Newly issued manifests.
        issued: Vec<Issued>,
        /// Releases (model, version) issued to this device for the first
        /// time, at `at`.
        first_issued: Vec<(ModelName, String)>,
    },
}

/// A device as loaded at start.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDevice {
    pub new: NewDevice,
    pub revoked_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
    pub profile: Option<DeviceProfile>,
    pub blocked: std::collections::BTreeMap<ModelName, Vec<Blocked>>,
    pub pins: Vec<(ModelName, String)>,
    pub issued: Vec<Issued>,
    /// (model, version, when first issued to this device).
    pub first_issued: Vec<(ModelName, String, Timestamp)>,
}

/// Everything, as loaded at start.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub releases: Vec<Release>,
    pub channels: Vec<Channel>,
    pub rollouts: Vec<Rollout>,
    pub frozen: Option<Freeze>,
    /// App key digest and the app its devices belong to.
    pub app_keys: Vec<(Digest, String)>,
    /// Sealed blob digest and its content key.
    pub content_keys: Vec<(Digest, [u8; 32])>,
    pub devices: Vec<StoredDevice>,
    /// Manifest versions up to this may have been issued.
    pub version_reserved: u64,
    /// Users, API tokens and live sessions.
    pub accounts: crate::access::Accounts,
    /// The change log's newest position, read in the same transaction.
    pub change_log_position: u64,
}

/// Held while an admin change is computed and committed (see
/// [`Db::admin_lock`]); dropping it releases the lock.
pub struct AdminLock(pub Box<dyn std::any::Any + Send>);

impl std::fmt::Debug for AdminLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminLock")
    }
}

/// How [`Db::load_device`] finds a device.
#[derive(Debug, Clone)]
pub enum DeviceKey {
    Id(String),
    TokenHash(Digest),
}

pub type DbFuture<'a, T> = Pin<Box<dyn Future<Output = DbResult<T>> + Send + 'a>>;

/// The fleet's storage. Implementations keep every write atomic: a
/// `commit` or a `write_devices` batch lands whole or not at all.
pub trait Db: Send + Sync + 'static {
    /// Everything needed to rebuild the state in memory.
    fn load(&self) -> DbFuture<'_, Snapshot>;
    /// Admin changes and their audit record, in one transaction; changes
    /// also go to the change log other replicas replay. Returns their
    /// change-log position (0 without changes).
    fn commit(&self, changes: Vec<Change>, audit: AuditRecord) -> DbFuture<'_, u64>;
    /// A batch of device writes, in one transaction.
    fn write_devices(&self, writes: Vec<DeviceWrite>) -> DbFuture<'_, ()>;
    /// Reserves the next `block` manifest versions for this process,
    /// atomically across replicas; returns the last of them (a restarted
    /// fleet, or another replica, starts above it).
    fn reserve_versions(&self, block: u64) -> DbFuture<'_, u64>;
    /// The change log after position `after`, oldest first: what other
    /// replicas committed, to replay in memory.
    fn changes_since(&self, after: u64) -> DbFuture<'_, Vec<(u64, Vec<Change>)>>;
    /// The newest change-log position (0: none).
    fn last_change(&self) -> DbFuture<'_, u64>;
    /// Takes or renews the lease `name` for `holder` until `now + ttl_s`
    /// (unix seconds): its fencing token when `holder` has it, `None` when
    /// another replica holds it unexpired. The token grows whenever the
    /// holder changes.
    fn lease(
        &self,
        name: String,
        holder: String,
        now: u64,
        ttl_s: u64,
    ) -> DbFuture<'_, Option<u64>>;
    /// Serialises admin changes across replicas sharing the database: held
    /// until the returned lock is dropped. `None` where one process owns
    /// the database (SQLite), whose in-process lock is enough.
    fn admin_lock(&self) -> DbFuture<'_, Option<AdminLock>>;
    /// One device as stored, by id or by token digest: for a replica that
    /// did not see its registration or last check-in.
    fn load_device(&self, by: DeviceKey) -> DbFuture<'_, Option<StoredDevice>>;
    /// The newest audit records first, up to `limit`, older than `before`
    /// when given.
    fn audit_log(&self, limit: u32, before: Option<u64>) -> DbFuture<'_, Vec<AuditRecord>>;
    /// Telemetry, in one transaction: replaces the given minutes' and
    /// hours' aggregates, records the batch ids, deletes the minutes before
    /// `rolled_before_minute` (they are in the hours written), and deletes
    /// minutes, hours and batch ids older than `forget_before_s`.
    fn write_telemetry(
        &self,
        rows: TelemetryRows,
        rolled_before_minute: u64,
        forget_before_s: u64,
    ) -> DbFuture<'_, ()>;
    /// Telemetry minutes, hours and batch ids from `since_s` (unix
    /// seconds) on; hours that end after it.
    fn load_telemetry(&self, since_s: u64) -> DbFuture<'_, TelemetryRows>;
    /// Replicas sharing the database (PostgreSQL only): records `batch`
    /// and merges `delta` into the minute and hour rows and the device
    /// sightings, in one transaction; `false`, with nothing written, when
    /// the batch was recorded before.
    fn ingest_telemetry(&self, batch: BatchRecord, delta: TelemetryDelta) -> DbFuture<'_, bool>;
    /// Replicas sharing the database: merges the minutes before
    /// `before_minute` into their hours and deletes them, and forgets
    /// aggregates, sightings and batch ids older than `forget_before_s`;
    /// one replica at a time (another's call returns at once).
    fn roll_up_telemetry(&self, before_minute: u64, forget_before_s: u64) -> DbFuture<'_, ()>;
    /// Replicas sharing the database: the rows written from position
    /// `from` on (0: all), the roll-up mark, and where to ask from next.
    fn telemetry_changes(&self, from: u64) -> DbFuture<'_, TelemetryChanges>;
}
