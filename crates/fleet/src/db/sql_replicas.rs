//! The SQL that lets several fleet replicas share one database (#21): the
//! change log other replicas replay (read here; written by the admin
//! commit in `sql.rs`, in its own transaction), the admin lock that serialises admin changes across
//! replicas (a PostgreSQL advisory lock held by an open transaction),
//! leases with fencing tokens for background work, atomic reservation of
//! manifest-version blocks, and one device read back by id or token.

use sqlx::Row;

use super::codec::{corrupt, int, sql, uint};
use super::error::DbResult;
use super::sql::{Dialect, SqlDb};
use super::sql_load::load_devices;
use super::{AdminLock, DeviceKey, StoredDevice};
use crate::state::Change;

/// The advisory-lock key of admin changes ("outpost" in ASCII).
const ADMIN_LOCK_KEY: i64 = 0x006f_7574_706f_7374;

impl SqlDb {
    pub(super) async fn changes_since_inner(
        &self,
        after: u64,
    ) -> DbResult<Vec<(u64, Vec<Change>)>> {
        let rows = sqlx::query("SELECT id, changes FROM change_log WHERE id > $1 ORDER BY id")
            .bind(int(after))
            .fetch_all(&self.pool)
            .await
            .map_err(sql("reading the change log"))?;
        rows.iter()
            .map(|row| {
                let body: String = row.get("changes");
                Ok((
                    uint(row.get("id")),
                    serde_json::from_str(&body).map_err(corrupt("change log entry"))?,
                ))
            })
            .collect()
    }

    pub(super) async fn last_change_inner(&self) -> DbResult<u64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM change_log")
            .fetch_one(&self.pool)
            .await
            .map_err(sql("reading the change log"))?;
        Ok(id.map_or(0, uint))
    }

    pub(super) async fn reserve_versions_inner(&self, block: u64) -> DbResult<u64> {
        let upto: String = sqlx::query_scalar(
            "INSERT INTO meta (key, value) VALUES ('version_reserved', $1)
             ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + $2 AS TEXT)
             RETURNING value",
        )
        .bind(block.to_string())
        .bind(int(block))
        .fetch_one(&self.pool)
        .await
        .map_err(sql("reserving manifest versions"))?;
        upto.parse().map_err(|_| super::DbError::Corrupt {
            what: "manifest version reservation",
            problem: format!("{upto:?} is not a number"),
        })
    }

    pub(super) async fn lease_inner(
        &self,
        name: &str,
        holder: &str,
        now: u64,
        ttl_s: u64,
    ) -> DbResult<Option<u64>> {
        // Taken when free, expired or already ours; the fence grows only
        // when the holder changes.
        let fence: Option<i64> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, fence, expires_at) VALUES ($1, $2, 1, $3)
             ON CONFLICT (name) DO UPDATE SET
               fence = CASE WHEN leases.holder = excluded.holder THEN leases.fence ELSE leases.fence + 1 END,
               holder = excluded.holder,
               expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4
             RETURNING fence",
        )
        .bind(name.to_string())
        .bind(holder.to_string())
        .bind(int(now + ttl_s))
        .bind(int(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("taking a lease"))?;
        Ok(fence.map(uint))
    }

    pub(super) async fn admin_lock_inner(&self) -> DbResult<Option<AdminLock>> {
        if self.dialect() == Dialect::Sqlite {
            return Ok(None);
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("starting the admin lock's transaction"))?;
        sqlx::query("SELECT CAST(pg_advisory_xact_lock($1) AS TEXT)")
            .bind(ADMIN_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(sql("taking the admin lock"))?;
        // Released when the transaction ends: the lock is dropped, sqlx
        // rolls it back.
        Ok(Some(AdminLock(Box::new(tx))))
    }

    pub(super) async fn load_device_inner(&self, by: DeviceKey) -> DbResult<Option<StoredDevice>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("starting a transaction"))?;
        let id = match by {
            DeviceKey::Id(id) => id,
            DeviceKey::TokenHash(h) => {
                let id: Option<String> =
                    sqlx::query_scalar("SELECT id FROM devices WHERE token_hash = $1")
                        .bind(h.to_string())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(sql("looking up a device token"))?;
                match id {
                    Some(id) => id,
                    None => return Ok(None),
                }
            }
        };
        let mut found = load_devices(&mut tx, Some(&id)).await?;
        tx.commit().await.map_err(sql("ending the read"))?;
        Ok(found.pop())
    }
}
