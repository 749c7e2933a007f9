//! `outpost fleet migrate`: copies a fleet's whole database into another
//! (SQLite to PostgreSQL, or back), table by table in foreign-key order,
//! every value as stored. The source is read in one transaction (a
//! consistent copy of a fleet that keeps running); the target is written in
//! one transaction, so a copy that fails half-way leaves it empty. The
//! target must be empty: a fleet never started on it.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::codec::sql;
use super::error::{DbError, DbResult};
use super::sql::{Dialect, SqlDb};

/// A column's storage class (the schema holds only these two).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Text,
}
use Kind::{Int, Text};

/// One table: how it is read and written, column for column.
struct Table {
    name: &'static str,
    select: &'static str,
    insert: &'static str,
    /// Its rows, to check that the target is empty.
    count: &'static str,
    kinds: &'static [Kind],
}

/// How many tables a copy goes through.
pub const TABLE_COUNT: usize = TABLES.len();

/// Every table of schema version 7, parents before children.
const TABLES: &[Table] = &[
    Table {
        name: "meta",
        count: "SELECT COUNT(*) FROM meta",
        select: "SELECT key, value FROM meta ORDER BY key, value",
        insert: "INSERT INTO meta (key, value) VALUES ($1, $2)",
        kinds: &[Text, Text],
    },
    Table {
        name: "app_keys",
        count: "SELECT COUNT(*) FROM app_keys",
        select: "SELECT hash, label, created_at, app FROM app_keys ORDER BY hash, label",
        insert: "INSERT INTO app_keys (hash, label, created_at, app) VALUES ($1, $2, $3, $4)",
        kinds: &[Text, Text, Int, Text],
    },
    Table {
        name: "releases",
        count: "SELECT COUNT(*) FROM releases",
        select: "SELECT model, version, meta, published_at, revoked_at, revoke_reason FROM releases ORDER BY model, version",
        insert: "INSERT INTO releases (model, version, meta, published_at, revoked_at, revoke_reason) VALUES ($1, $2, $3, $4, $5, $6)",
        kinds: &[Text, Text, Text, Int, Int, Text],
    },
    Table {
        name: "variants",
        count: "SELECT COUNT(*) FROM variants",
        select: "SELECT model, version, digest, length, quantization FROM variants ORDER BY model, version",
        insert: "INSERT INTO variants (model, version, digest, length, quantization) VALUES ($1, $2, $3, $4, $5)",
        kinds: &[Text, Text, Text, Int, Text],
    },
    Table {
        name: "channels",
        count: "SELECT COUNT(*) FROM channels",
        select: "SELECT name, created_at FROM channels ORDER BY name, created_at",
        insert: "INSERT INTO channels (name, created_at) VALUES ($1, $2)",
        kinds: &[Text, Int],
    },
    Table {
        name: "channel_releases",
        count: "SELECT COUNT(*) FROM channel_releases",
        select: "SELECT id, channel, model, version, at FROM channel_releases ORDER BY id",
        insert: "INSERT INTO channel_releases (id, channel, model, version, at) VALUES ($1, $2, $3, $4, $5)",
        kinds: &[Int, Text, Text, Text, Int],
    },
    Table {
        name: "rollouts",
        count: "SELECT COUNT(*) FROM rollouts",
        select: "SELECT id, body, model, version, channel, state FROM rollouts ORDER BY id",
        insert: "INSERT INTO rollouts (id, body, model, version, channel, state) VALUES ($1, $2, $3, $4, $5, $6)",
        kinds: &[Int, Text, Text, Text, Text, Text],
    },
    Table {
        name: "devices",
        count: "SELECT COUNT(*) FROM devices",
        select: "SELECT id, token_hash, channel, registered_at, last_seen_at, profile, blocked, public_key, revoked_at, app FROM devices ORDER BY id, token_hash",
        insert: "INSERT INTO devices (id, token_hash, channel, registered_at, last_seen_at, profile, blocked, public_key, revoked_at, app) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        kinds: &[Text, Text, Text, Int, Int, Text, Text, Text, Int, Text],
    },
    Table {
        name: "pins",
        count: "SELECT COUNT(*) FROM pins",
        select: "SELECT device_id, model, version FROM pins ORDER BY device_id, model",
        insert: "INSERT INTO pins (device_id, model, version) VALUES ($1, $2, $3)",
        kinds: &[Text, Text, Text],
    },
    Table {
        name: "issued",
        count: "SELECT COUNT(*) FROM issued",
        select: "SELECT device_id, model, manifest_version, content_key, model_version, expires_at, envelope FROM issued ORDER BY device_id, model",
        insert: "INSERT INTO issued (device_id, model, manifest_version, content_key, model_version, expires_at, envelope) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        kinds: &[Text, Text, Int, Text, Text, Int, Text],
    },
    Table {
        name: "first_issued",
        count: "SELECT COUNT(*) FROM first_issued",
        select: "SELECT device_id, model, model_version, at FROM first_issued ORDER BY device_id, model",
        insert: "INSERT INTO first_issued (device_id, model, model_version, at) VALUES ($1, $2, $3, $4)",
        kinds: &[Text, Text, Text, Int],
    },
    Table {
        name: "content_keys",
        count: "SELECT COUNT(*) FROM content_keys",
        select: "SELECT digest, key, created_at FROM content_keys ORDER BY digest, key",
        insert: "INSERT INTO content_keys (digest, key, created_at) VALUES ($1, $2, $3)",
        kinds: &[Text, Text, Int],
    },
    Table {
        name: "audit",
        count: "SELECT COUNT(*) FROM audit",
        select: "SELECT id, at, actor, action, target, detail FROM audit ORDER BY id",
        insert: "INSERT INTO audit (id, at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        kinds: &[Int, Int, Text, Text, Text, Text],
    },
    Table {
        name: "telemetry_minutes",
        count: "SELECT COUNT(*) FROM telemetry_minutes",
        select: "SELECT minute, device_class, channel, model, model_version, agg FROM telemetry_minutes ORDER BY minute, device_class",
        insert: "INSERT INTO telemetry_minutes (minute, device_class, channel, model, model_version, agg) VALUES ($1, $2, $3, $4, $5, $6)",
        kinds: &[Int, Text, Text, Text, Text, Text],
    },
    Table {
        name: "telemetry_hours",
        count: "SELECT COUNT(*) FROM telemetry_hours",
        select: "SELECT minute, device_class, channel, model, model_version, agg FROM telemetry_hours ORDER BY minute, device_class",
        insert: "INSERT INTO telemetry_hours (minute, device_class, channel, model, model_version, agg) VALUES ($1, $2, $3, $4, $5, $6)",
        kinds: &[Int, Text, Text, Text, Text, Text],
    },
    // Without `xid`: transaction ids mean nothing in another database
    // (0: every replica of the target reads the row when it starts).
    Table {
        name: "telemetry_devices",
        count: "SELECT COUNT(*) FROM telemetry_devices",
        select: "SELECT device_class, channel, model, model_version, device, minute FROM telemetry_devices ORDER BY device_class, channel, model, model_version, device",
        insert: "INSERT INTO telemetry_devices (device_class, channel, model, model_version, device, minute) VALUES ($1, $2, $3, $4, $5, $6)",
        kinds: &[Text, Text, Text, Text, Int, Int],
    },
    Table {
        name: "telemetry_batches",
        count: "SELECT COUNT(*) FROM telemetry_batches",
        select: "SELECT device_id, batch_id, received_at FROM telemetry_batches ORDER BY device_id, batch_id",
        insert: "INSERT INTO telemetry_batches (device_id, batch_id, received_at) VALUES ($1, $2, $3)",
        kinds: &[Text, Text, Int],
    },
    Table {
        name: "change_log",
        count: "SELECT COUNT(*) FROM change_log",
        select: "SELECT id, changes FROM change_log ORDER BY id",
        insert: "INSERT INTO change_log (id, changes) VALUES ($1, $2)",
        kinds: &[Int, Text],
    },
    Table {
        name: "leases",
        count: "SELECT COUNT(*) FROM leases",
        select: "SELECT name, holder, fence, expires_at FROM leases ORDER BY name",
        insert: "INSERT INTO leases (name, holder, fence, expires_at) VALUES ($1, $2, $3, $4)",
        kinds: &[Text, Text, Int, Int],
    },
    Table {
        name: "users",
        count: "SELECT COUNT(*) FROM users",
        select: "SELECT name, role, password_hash, created_at, failed_logins, locked_until FROM users ORDER BY name, role",
        insert: "INSERT INTO users (name, role, password_hash, created_at, failed_logins, locked_until) VALUES ($1, $2, $3, $4, $5, $6)",
        kinds: &[Text, Text, Text, Int, Int, Int],
    },
    Table {
        name: "api_tokens",
        count: "SELECT COUNT(*) FROM api_tokens",
        select: "SELECT id, name, role, hash, created_by, created_at, expires_at, revoked_at, apps FROM api_tokens ORDER BY id, name",
        insert: "INSERT INTO api_tokens (id, name, role, hash, created_by, created_at, expires_at, revoked_at, apps) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        kinds: &[Text, Text, Text, Text, Text, Int, Int, Int, Text],
    },
    Table {
        name: "sessions",
        count: "SELECT COUNT(*) FROM sessions",
        select: "SELECT hash, user_name, csrf_hash, created_at, expires_at FROM sessions ORDER BY hash, user_name",
        insert: "INSERT INTO sessions (hash, user_name, csrf_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        kinds: &[Text, Text, Text, Int, Int],
    },];

/// One value read from the source.
enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

fn failed(table: &'static str, doing: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
    move |source| DbError::Copy {
        table,
        doing,
        source,
    }
}

fn read_row(row: &AnyRow, kinds: &[Kind], table: &'static str) -> DbResult<Vec<Cell>> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Ok(match k {
                Int => Cell::Int(row.try_get(i).map_err(failed(table, "reading a value"))?),
                Text => Cell::Text(row.try_get(i).map_err(failed(table, "reading a value"))?),
            })
        })
        .collect()
}

/// How many rows each table held, in copy order.
pub type CopyReport = Vec<(&'static str, u64)>;

/// Opens both databases (bringing each schema to the newest version: the
/// copy is column for column between equal schemas) and copies `from`
/// into `to`.
pub async fn migrate(
    from: &super::DbUrl,
    to: &super::DbUrl,
    progress: impl FnMut(&'static str, u64),
) -> DbResult<CopyReport> {
    if from == to {
        return Err(DbError::SameDatabase);
    }
    let source = SqlDb::open(from).await?;
    let target = SqlDb::open(to).await?;
    copy_database(&source, &target, progress).await
}

/// Copies everything in `from` into `to` (empty). `progress` hears each
/// table as it is done.
pub async fn copy_database(
    from: &SqlDb,
    to: &SqlDb,
    mut progress: impl FnMut(&'static str, u64),
) -> DbResult<CopyReport> {
    let mut dst = to
        .pool
        .begin()
        .await
        .map_err(sql("starting the target's transaction"))?;
    for t in TABLES {
        let n: i64 = sqlx::query_scalar(t.count)
            .fetch_one(&mut *dst)
            .await
            .map_err(sql("checking that the target is empty"))?;
        if n > 0 {
            return Err(DbError::NotEmpty {
                table: t.name,
                rows: u64::try_from(n).unwrap_or(0),
            });
        }
    }
    let mut src = from
        .pool
        .begin()
        .await
        .map_err(sql("starting the source's transaction"))?;
    if from.dialect() == Dialect::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *src)
            .await
            .map_err(sql("starting a consistent read of the source"))?;
    }
    let mut report = Vec::with_capacity(TABLES.len());
    for t in TABLES {
        let n = copy_table(&mut src, &mut dst, t).await?;
        progress(t.name, n);
        report.push((t.name, n));
    }
    if to.dialect() == Dialect::Postgres {
        // Ids were copied as they were; the identity columns go on after
        // the largest.
        for q in [
            "SELECT setval(pg_get_serial_sequence('audit', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM audit",
            "SELECT setval(pg_get_serial_sequence('channel_releases', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM channel_releases",
        ] {
            sqlx::query(q)
                .execute(&mut *dst)
                .await
                .map_err(sql("moving the target's id sequences past the copied ids"))?;
        }
    }
    src.commit()
        .await
        .map_err(sql("ending the source's read"))?;
    dst.commit().await.map_err(sql("committing the copy"))?;
    Ok(report)
}

async fn copy_table(
    src: &mut Transaction<'_, Any>,
    dst: &mut Transaction<'_, Any>,
    t: &Table,
) -> DbResult<u64> {
    let rows = sqlx::query(t.select)
        .fetch_all(&mut **src)
        .await
        .map_err(failed(t.name, "reading the source"))?;
    for row in &rows {
        let mut q = sqlx::query(t.insert);
        for cell in read_row(row, t.kinds, t.name)? {
            q = match cell {
                Cell::Int(v) => q.bind(v),
                Cell::Text(v) => q.bind(v),
            };
        }
        q.execute(&mut **dst)
            .await
            .map_err(failed(t.name, "writing the target"))?;
    }
    Ok(rows.len() as u64)
}
