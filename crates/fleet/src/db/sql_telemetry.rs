//! The SQL of telemetry (both dialects): per-minute and hourly cohort aggregates
//! (replaced whole on each flush; minutes rolled into hours are deleted in
//! the same transaction) and the batch ids already counted.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::codec::{corrupt, int, model, sql, to_json, uint};
use super::error::DbResult;
use super::sql::SqlDb;
use crate::telemetry::{BatchRecord, CohortKey, MinuteRow, TelemetryRows};

/// Upserts aggregates into `telemetry_minutes` or `telemetry_hours`.
async fn upsert(tx: &mut Transaction<'_, Any>, hours: bool, rows: &[MinuteRow]) -> DbResult<()> {
    let q = if hours {
        "INSERT INTO telemetry_hours (minute, device_class, channel, model, model_version, agg) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (minute, device_class, channel, model, model_version) DO UPDATE SET agg = excluded.agg"
    } else {
        "INSERT INTO telemetry_minutes (minute, device_class, channel, model, model_version, agg) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (minute, device_class, channel, model, model_version) DO UPDATE SET agg = excluded.agg"
    };
    for r in rows {
        sqlx::query(q)
            .bind(int(r.minute))
            .bind(&r.key.device_class)
            .bind(&r.key.channel)
            .bind(r.key.model.as_str())
            .bind(&r.key.model_version)
            .bind(to_json(&r.agg))
            .execute(&mut **tx)
            .await
            .map_err(sql("writing telemetry aggregates"))?;
    }
    Ok(())
}

pub(super) fn agg_row(row: &AnyRow) -> DbResult<MinuteRow> {
    let agg: String = row.get("agg");
    let m: String = row.get("model");
    Ok(MinuteRow {
        minute: uint(row.get("minute")),
        key: CohortKey {
            device_class: row.get("device_class"),
            channel: row.get("channel"),
            model: model(&m)?,
            model_version: row.get("model_version"),
        },
        agg: serde_json::from_str(&agg).map_err(corrupt("telemetry aggregate"))?,
    })
}

impl SqlDb {
    pub(super) async fn write_telemetry_inner(
        &self,
        rows: TelemetryRows,
        rolled_before_minute: u64,
        forget_before_s: u64,
    ) -> DbResult<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("starting a transaction"))?;
        upsert(&mut tx, false, &rows.minutes).await?;
        upsert(&mut tx, true, &rows.hours).await?;
        for b in &rows.batches {
            sqlx::query(
                "INSERT INTO telemetry_batches (device_id, batch_id, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&b.device_id)
            .bind(&b.batch_id)
            .bind(int(b.received_at))
            .execute(&mut *tx)
            .await
            .map_err(sql("recording telemetry batches"))?;
        }
        let forget_minute = forget_before_s / 60;
        sqlx::query("DELETE FROM telemetry_minutes WHERE minute < $1")
            .bind(int(forget_minute.max(rolled_before_minute)))
            .execute(&mut *tx)
            .await
            .map_err(sql("deleting telemetry minutes rolled into hours"))?;
        // An hour goes when all of it is older than the limit.
        sqlx::query("DELETE FROM telemetry_hours WHERE minute < $1")
            .bind(int(forget_minute / 60 * 60))
            .execute(&mut *tx)
            .await
            .map_err(sql("forgetting old telemetry hours"))?;
        sqlx::query("DELETE FROM telemetry_batches WHERE received_at < $1")
            .bind(int(forget_before_s))
            .execute(&mut *tx)
            .await
            .map_err(sql("forgetting old telemetry batches"))?;
        tx.commit().await.map_err(sql("committing telemetry"))
    }

    pub(super) async fn load_telemetry_inner(&self, since_s: u64) -> DbResult<TelemetryRows> {
        let since_minute = since_s / 60;
        let rows = sqlx::query(
            "SELECT minute, device_class, channel, model, model_version, agg FROM telemetry_minutes WHERE minute >= $1",
        )
        .bind(int(since_minute))
        .fetch_all(&self.pool)
        .await
        .map_err(sql("loading telemetry aggregates"))?;
        let minutes = rows.iter().map(agg_row).collect::<DbResult<Vec<_>>>()?;
        let rows = sqlx::query(
            "SELECT minute, device_class, channel, model, model_version, agg FROM telemetry_hours WHERE minute >= $1",
        )
        .bind(int(since_minute / 60 * 60))
        .fetch_all(&self.pool)
        .await
        .map_err(sql("loading hourly telemetry aggregates"))?;
        let hours = rows.iter().map(agg_row).collect::<DbResult<Vec<_>>>()?;
        let rows = sqlx::query(
            "SELECT device_id, batch_id, received_at FROM telemetry_batches WHERE received_at >= $1",
        )
        .bind(int(since_s))
        .fetch_all(&self.pool)
        .await
        .map_err(sql("loading telemetry batches"))?;
        let batches = rows
            .iter()
            .map(|row| BatchRecord {
                device_id: row.get("device_id"),
                batch_id: row.get("batch_id"),
                received_at: uint(row.get("received_at")),
            })
            .collect();
        Ok(TelemetryRows {
            minutes,
            hours,
            batches,
        })
    }
}
