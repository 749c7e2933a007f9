//! The SQL of telemetry shared by replicas (#21; PostgreSQL, the only
//! database replicas share): a batch merged into its rows in the
//! transaction that records its id; the roll-up of old minutes into hours
//! by one replica at a time (an advisory lock taken with `try`, so others
//! skip); and the rows written since a position, for each replica's cache.
//!
//! Positions are transaction ids: every write stamps its row with the
//! writing transaction's id (`xid`), and a reader asks for the rows with
//! `xid` at or above the oldest transaction still running when it last
//! read (`pg_snapshot_xmin`). Every transaction below that had ended, so
//! nothing committed is skipped; rows read twice are replaced, not added.
//! Rows are locked in key order (minutes, hours, sightings, each sorted),
//! the same in every transaction, so two batches never deadlock.

use std::collections::BTreeMap;

use sqlx::{Any, Row, Transaction};

use super::codec::{corrupt, int, model, sql, to_json, uint};
use super::error::DbResult;
use super::sql::SqlDb;
use super::sql_telemetry::agg_row;
use crate::telemetry::shared::{Sighting, TelemetryChanges, TelemetryDelta};
use crate::telemetry::{Agg, BatchRecord, CohortKey, MinuteRow};

/// The advisory-lock key of the telemetry roll-up ("outroll" in ASCII).
const ROLLUP_KEY: i64 = 0x6f75_7472_6f6c_6c;
/// The `meta` key of the first minute not rolled into hours.
const ROLLED_BEFORE: &str = "telemetry_rolled_before";

/// Merges `rows` into `telemetry_minutes` (or `telemetry_hours`): the row
/// is made if missing and locked, read, merged and written back.
async fn merge_rows(
    tx: &mut Transaction<'_, Any>,
    hours: bool,
    rows: &[MinuteRow],
) -> DbResult<()> {
    // Static statements per table (no SQL from strings at run time).
    let (lock, write) = if hours {
        (
            "INSERT INTO telemetry_hours (minute, device_class, channel, model, model_version, agg) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (minute, device_class, channel, model, model_version) DO UPDATE SET xid = telemetry_hours.xid RETURNING agg",
            "UPDATE telemetry_hours SET agg = $6, xid = pg_current_xact_id()::text::bigint \
             WHERE minute = $1 AND device_class = $2 AND channel = $3 AND model = $4 AND model_version = $5",
        )
    } else {
        (
            "INSERT INTO telemetry_minutes (minute, device_class, channel, model, model_version, agg) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (minute, device_class, channel, model, model_version) DO UPDATE SET xid = telemetry_minutes.xid RETURNING agg",
            "UPDATE telemetry_minutes SET agg = $6, xid = pg_current_xact_id()::text::bigint \
             WHERE minute = $1 AND device_class = $2 AND channel = $3 AND model = $4 AND model_version = $5",
        )
    };
    let empty = to_json(&Agg::default());
    for r in rows {
        let row = sqlx::query(lock)
            .bind(int(r.minute))
            .bind(&r.key.device_class)
            .bind(&r.key.channel)
            .bind(r.key.model.as_str())
            .bind(&r.key.model_version)
            .bind(&empty)
            .fetch_one(&mut **tx)
            .await
            .map_err(sql("locking a telemetry aggregate"))?;
        let stored: String = row.get("agg");
        let mut agg: Agg = serde_json::from_str(&stored).map_err(corrupt("telemetry aggregate"))?;
        agg.merge(&r.agg);
        sqlx::query(write)
            .bind(int(r.minute))
            .bind(&r.key.device_class)
            .bind(&r.key.channel)
            .bind(r.key.model.as_str())
            .bind(&r.key.model_version)
            .bind(to_json(&agg))
            .execute(&mut **tx)
            .await
            .map_err(sql("merging a telemetry aggregate"))?;
    }
    Ok(())
}

/// A device hash as a BIGINT (the same 64 bits).
fn device_int(d: u64) -> i64 {
    i64::from_ne_bytes(d.to_ne_bytes())
}

impl SqlDb {
    pub(super) async fn ingest_telemetry_inner(
        &self,
        batch: BatchRecord,
        delta: TelemetryDelta,
    ) -> DbResult<bool> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("starting a transaction"))?;
        let new = sqlx::query(
            "INSERT INTO telemetry_batches (device_id, batch_id, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&batch.device_id)
        .bind(&batch.batch_id)
        .bind(int(batch.received_at))
        .execute(&mut *tx)
        .await
        .map_err(sql("recording a telemetry batch"))?
        .rows_affected()
            == 1;
        if !new {
            tx.rollback().await.map_err(sql("ending a transaction"))?;
            return Ok(false);
        }
        merge_rows(&mut tx, false, &delta.minutes).await?;
        merge_rows(&mut tx, true, &delta.hours).await?;
        for s in &delta.sightings {
            sqlx::query(
                "INSERT INTO telemetry_devices (device_class, channel, model, model_version, device, minute, xid) \
                 VALUES ($1, $2, $3, $4, $5, $6, pg_current_xact_id()::text::bigint) \
                 ON CONFLICT (device_class, channel, model, model_version, device) \
                 DO UPDATE SET minute = GREATEST(telemetry_devices.minute, excluded.minute), xid = excluded.xid",
            )
            .bind(&s.key.device_class)
            .bind(&s.key.channel)
            .bind(s.key.model.as_str())
            .bind(&s.key.model_version)
            .bind(device_int(s.device))
            .bind(int(s.minute))
            .execute(&mut *tx)
            .await
            .map_err(sql("recording a device's telemetry"))?;
        }
        tx.commit().await.map_err(sql("committing telemetry"))?;
        Ok(true)
    }

    pub(super) async fn roll_up_telemetry_inner(
        &self,
        before_minute: u64,
        forget_before_s: u64,
    ) -> DbResult<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("starting a transaction"))?;
        let mine: i64 =
            sqlx::query_scalar("SELECT CASE WHEN pg_try_advisory_xact_lock($1) THEN 1 ELSE 0 END")
                .bind(ROLLUP_KEY)
                .fetch_one(&mut *tx)
                .await
                .map_err(sql("taking the telemetry roll-up lock"))?;
        if mine != 1 {
            tx.rollback().await.map_err(sql("ending a transaction"))?;
            return Ok(());
        }
        let marked: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(ROLLED_BEFORE)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql("reading the telemetry roll-up mark"))?;
        let marked = marked.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let before = before_minute.max(marked);
        let gone = sqlx::query(
            "DELETE FROM telemetry_minutes WHERE minute < $1 \
             RETURNING minute, device_class, channel, model, model_version, agg",
        )
        .bind(int(before))
        .fetch_all(&mut *tx)
        .await
        .map_err(sql("taking telemetry minutes to roll up"))?;
        let mut hours: BTreeMap<(u64, CohortKey), Agg> = BTreeMap::new();
        for row in &gone {
            let r = agg_row(row)?;
            hours
                .entry((r.minute / 60 * 60, r.key))
                .or_default()
                .merge(&r.agg);
        }
        let rows: Vec<MinuteRow> = hours
            .into_iter()
            .map(|((minute, key), agg)| MinuteRow { minute, key, agg })
            .collect();
        merge_rows(&mut tx, true, &rows).await?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(ROLLED_BEFORE)
        .bind(before.to_string())
        .execute(&mut *tx)
        .await
        .map_err(sql("writing the telemetry roll-up mark"))?;
        let forget_minute = forget_before_s / 60;
        for (q, doing, v) in [
            (
                "DELETE FROM telemetry_hours WHERE minute < $1",
                "forgetting old telemetry hours",
                int(forget_minute / 60 * 60),
            ),
            (
                "DELETE FROM telemetry_devices WHERE minute < $1",
                "forgetting old telemetry sightings",
                int(forget_minute),
            ),
            (
                "DELETE FROM telemetry_batches WHERE received_at < $1",
                "forgetting old telemetry batches",
                int(forget_before_s),
            ),
        ] {
            sqlx::query(q)
                .bind(v)
                .execute(&mut *tx)
                .await
                .map_err(sql(doing))?;
        }
        tx.commit()
            .await
            .map_err(sql("committing a telemetry roll-up"))
    }

    pub(super) async fn telemetry_changes_inner(&self, from: u64) -> DbResult<TelemetryChanges> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("starting a transaction"))?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(sql("starting a consistent read"))?;
        let next: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                .fetch_one(&mut *tx)
                .await
                .map_err(sql("reading the oldest running transaction"))?;
        let marked: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(ROLLED_BEFORE)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql("reading the telemetry roll-up mark"))?;
        let from = int(from);
        let minutes = sqlx::query(
            "SELECT minute, device_class, channel, model, model_version, agg FROM telemetry_minutes WHERE xid >= $1",
        )
        .bind(from)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql("reading changed telemetry minutes"))?;
        let hours = sqlx::query(
            "SELECT minute, device_class, channel, model, model_version, agg FROM telemetry_hours WHERE xid >= $1",
        )
        .bind(from)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql("reading changed telemetry hours"))?;
        let seen = sqlx::query(
            "SELECT device_class, channel, model, model_version, device, minute FROM telemetry_devices WHERE xid >= $1",
        )
        .bind(from)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql("reading telemetry sightings"))?;
        tx.commit().await.map_err(sql("ending the read"))?;
        let mut sightings = Vec::with_capacity(seen.len());
        for row in &seen {
            let m: String = row.get("model");
            sightings.push(Sighting {
                key: CohortKey {
                    device_class: row.get("device_class"),
                    channel: row.get("channel"),
                    model: model(&m)?,
                    model_version: row.get("model_version"),
                },
                device: u64::from_ne_bytes(row.get::<i64, _>("device").to_ne_bytes()),
                minute: uint(row.get("minute")),
            });
        }
        Ok(TelemetryChanges {
            minutes: minutes.iter().map(agg_row).collect::<DbResult<_>>()?,
            hours: hours.iter().map(agg_row).collect::<DbResult<_>>()?,
            sightings,
            rolled_before: marked.and_then(|v| v.parse().ok()).unwrap_or(0),
            next_from: uint(next),
        })
    }
}
