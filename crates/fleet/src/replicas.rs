//! Several `outpost fleet serve` processes on one database (#21). Each
//! keeps the fleet's state in memory, and stays in step through the
//! database:
//! - admin changes run one at a time across replicas: [`Fleet::admin_guard`]
//!   takes the in-process lock, then the database's admin lock (PostgreSQL;
//!   SQLite has one process), then replays what other replicas committed
//!   (the change log) before the caller looks at the state;
//! - every tick replays the change log too, so reads (and device
//!   assignments) on every replica follow within a tick;
//! - devices are read back from the database per request
//!   (`Fleet::device_by_token`), so a device may talk to any replica;
//! - background work (soak timers, automatic halts) runs where the
//!   `background` lease is held: one replica at a time, taken over when the
//!   holder stops renewing; as it acts only under the admin guard, on
//!   replayed state, a stage never advances twice.

use std::sync::atomic::Ordering;

use crate::db::DeviceKey;
use crate::error::FleetResult;
use crate::state::Change;
use crate::Fleet;

/// How long the background lease lasts without renewal (seconds).
pub const LEASE_TTL_S: u64 = 10;

/// The lease of the background work.
pub const BACKGROUND_LEASE: &str = "background";

/// Held while an admin change is validated, computed and committed.
pub(crate) struct AdminGuard<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    _db: Option<crate::db::AdminLock>,
}

impl Fleet {
    /// The in-process admin lock, the database's (when replicas share it),
    /// and the state brought up to date with the change log.
    pub(crate) async fn admin_guard(&self) -> FleetResult<AdminGuard<'_>> {
        let local = self.admin_lock.lock().await;
        let db = self.db.admin_lock().await?;
        self.replay_locked().await?;
        Ok(AdminGuard {
            _local: local,
            _db: db,
        })
    }

    /// Replays the change log (what other replicas committed) into memory.
    pub async fn catch_up(&self) -> FleetResult<()> {
        let _g = self.admin_guard().await?;
        self.replay_locked().await
    }

    async fn replay_locked(&self) -> FleetResult<()> {
        let after = self.applied.load(Ordering::SeqCst);
        for (id, changes) in self.db.changes_since(after).await? {
            self.apply_in_memory(&changes);
            self.applied.store(id, Ordering::SeqCst);
        }
        Ok(())
    }

    /// After this process committed `changes` at change-log position `id`
    /// (0: none). Under the admin guard nothing comes between, so they are
    /// applied at once; otherwise (a first start beside another replica)
    /// the log is replayed up to and including them, in order.
    pub(crate) async fn committed(&self, id: u64, changes: &[Change]) -> FleetResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        if self
            .applied
            .compare_exchange(id - 1, id, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.apply_in_memory(changes);
            return Ok(());
        }
        self.replay_locked().await
    }

    /// Whether this replica may run background work now: it holds the
    /// lease (taking or renewing it). Always, where one process owns the
    /// database.
    pub(crate) async fn holds_background_lease(&self) -> FleetResult<bool> {
        if !self.shared {
            return Ok(true);
        }
        let now = self.now().unix_seconds();
        Ok(self
            .db
            .lease(
                BACKGROUND_LEASE.to_string(),
                self.replica_id.clone(),
                now,
                LEASE_TTL_S,
            )
            .await?
            .is_some())
    }

    /// Whether the device exists: in memory, or (replicas sharing the
    /// database) registered through another replica, then kept here.
    pub(crate) async fn knows_device(&self, id: &str) -> FleetResult<bool> {
        if self.devices().by_id(id).is_some() {
            return Ok(true);
        }
        if !self.shared {
            return Ok(false);
        }
        match self.db.load_device(DeviceKey::Id(id.to_string())).await? {
            Some(d) => {
                self.devices_mut().insert(crate::device_from(d));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// This process's name as a lease holder.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }
}
