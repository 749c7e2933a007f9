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
mod sql_telemetry;
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
use crate::telemetry::TelemetryRows;

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
    pub app_keys: Vec<Digest>,
    /// Sealed blob digest and its content key.
    pub content_keys: Vec<(Digest, [u8; 32])>,
    pub devices: Vec<StoredDevice>,
    /// Manifest versions up to this may have been issued.
    pub version_reserved: u64,
    /// Users, API tokens and live sessions.
    pub accounts: crate::access::Accounts,
}

pub type DbFuture<'a, T> = Pin<Box<dyn Future<Output = DbResult<T>> + Send + 'a>>;

/// The fleet's storage. Implementations keep every write atomic: a
/// `commit` or a `write_devices` batch lands whole or not at all.
pub trait Db: Send + Sync + 'static {
    /// Everything needed to rebuild the state in memory.
    fn load(&self) -> DbFuture<'_, Snapshot>;
    /// Admin changes and their audit record, in one transaction.
    fn commit(&self, changes: Vec<Change>, audit: AuditRecord) -> DbFuture<'_, ()>;
    /// A batch of device writes, in one transaction.
    fn write_devices(&self, writes: Vec<DeviceWrite>) -> DbFuture<'_, ()>;
    /// Records that manifest versions up to `upto` may be issued, so a
    /// restarted fleet starts above them.
    fn reserve_versions(&self, upto: u64) -> DbFuture<'_, ()>;
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
}
