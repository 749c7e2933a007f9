//! The SQL of telemetry on SQLite: per-minute cohort aggregates (replaced
//! whole on each flush) and the batch ids already counted.

use sqlx::Row;

use super::sqlite::{corrupt, model, sql, to_json, SqliteDb};
use super::{BatchRecord, DbResult, MinuteRow};
use crate::telemetry::CohortKey;

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqliteDb {
    pub(super) async fn write_telemetry_inner(
        &self,
        rows: Vec<MinuteRow>,
        batches: Vec<BatchRecord>,
        forget_before_s: u64,
    ) -> DbResult<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("starting a transaction"))?;
        for r in &rows {
            sqlx::query(
                "INSERT INTO telemetry_minutes (minute, device_class, channel, model, model_version, agg) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (minute, device_class, channel, model, model_version) DO UPDATE SET agg = excluded.agg",
            )
            .bind(int(r.minute))
            .bind(&r.key.device_class)
            .bind(&r.key.channel)
            .bind(r.key.model.as_str())
            .bind(&r.key.model_version)
            .bind(to_json(&r.agg))
            .execute(&mut *tx)
            .await
            .map_err(sql("writing telemetry aggregates"))?;
        }
        for b in &batches {
            sqlx::query(
                "INSERT OR IGNORE INTO telemetry_batches (device_id, batch_id, received_at) VALUES (?, ?, ?)",
            )
            .bind(&b.device_id)
            .bind(&b.batch_id)
            .bind(int(b.received_at))
            .execute(&mut *tx)
            .await
            .map_err(sql("recording telemetry batches"))?;
        }
        sqlx::query("DELETE FROM telemetry_minutes WHERE minute < ?")
            .bind(int(forget_before_s / 60))
            .execute(&mut *tx)
            .await
            .map_err(sql("forgetting old telemetry"))?;
        sqlx::query("DELETE FROM telemetry_batches WHERE received_at < ?")
            .bind(int(forget_before_s))
            .execute(&mut *tx)
            .await
            .map_err(sql("forgetting old telemetry batches"))?;
        tx.commit().await.map_err(sql("committing telemetry"))
    }

    pub(super) async fn load_telemetry_inner(
        &self,
        since_s: u64,
    ) -> DbResult<(Vec<MinuteRow>, Vec<BatchRecord>)> {
        let rows = sqlx::query(
            "SELECT minute, device_class, channel, model, model_version, agg FROM telemetry_minutes WHERE minute >= ?",
        )
        .bind(int(since_s / 60))
        .fetch_all(&self.pool)
        .await
        .map_err(sql("loading telemetry aggregates"))?;
        let mut minutes = Vec::with_capacity(rows.len());
        for row in rows {
            let agg: String = row.get("agg");
            let m: String = row.get("model");
            minutes.push(MinuteRow {
                minute: uint(row.get("minute")),
                key: CohortKey {
                    device_class: row.get("device_class"),
                    channel: row.get("channel"),
                    model: model(&m)?,
                    model_version: row.get("model_version"),
                },
                agg: serde_json::from_str(&agg).map_err(corrupt("telemetry aggregate"))?,
            });
        }
        let rows = sqlx::query(
            "SELECT device_id, batch_id, received_at FROM telemetry_batches WHERE received_at >= ?",
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
        Ok((minutes, batches))
    }
}
