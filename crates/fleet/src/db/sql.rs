//! [`Db`] in SQL through sqlx's `Any` driver: one set of runtime-checked
//! queries for both dialects, chosen by [`DbUrl`]:
//! - SQLite (the default): one file in the data folder, WAL journal,
//!   `synchronous = NORMAL` (a commit survives the process being killed; a
//!   power cut may lose the last commits, never corrupt the file);
//! - PostgreSQL: any server the URL names (the database is created when
//!   missing and the role may), TLS when the URL asks for it.
//!
//! Each dialect has its own versioned, forward-only migrations
//! (`migrations/sqlite/`, `migrations/postgres/`, the same versions), run
//! and checked at start. Statements use `$N` parameters, which both accept;
//! the one place the dialects differ (a list bound as JSON) asks
//! [`Dialect`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Executor, Row, Transaction};

use super::codec::{corrupt, secs, sql, to_json, ts};
use super::error::{DbError, DbResult};
use super::{AuditRecord, Db, DbFuture, DbUrl, DeviceWrite, Snapshot, StoredDevice};
use crate::state::Change;
use crate::telemetry::TelemetryRows;

macro_rules! migrations {
    ($dir:literal) => {
        [
            (
                1,
                "init",
                include_str!(concat!("../../migrations/", $dir, "/0001_init.sql")),
            ),
            (
                2,
                "telemetry",
                include_str!(concat!("../../migrations/", $dir, "/0002_telemetry.sql")),
            ),
            (
                3,
                "first_issued",
                include_str!(concat!("../../migrations/", $dir, "/0003_first_issued.sql")),
            ),
            (
                4,
                "telemetry_hours",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0004_telemetry_hours.sql"
                )),
            ),
            (
                5,
                "device_keys",
                include_str!(concat!("../../migrations/", $dir, "/0005_device_keys.sql")),
            ),
            (
                6,
                "accounts",
                include_str!(concat!("../../migrations/", $dir, "/0006_accounts.sql")),
            ),
            (
                7,
                "replicas",
                include_str!(concat!("../../migrations/", $dir, "/0007_replicas.sql")),
            ),
            (
                8,
                "apps",
                include_str!(concat!("../../migrations/", $dir, "/0008_apps.sql")),
            ),
            (
                9,
                "shared_telemetry",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0009_shared_telemetry.sql"
                )),
            ),
        ]
    };
}

const SQLITE_MIGRATIONS: [(i64, &str, &str); 9] = migrations!("sqlite");
const POSTGRES_MIGRATIONS: [(i64, &str, &str); 9] = migrations!("postgres");

/// Which SQL the database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

fn migrator(dialect: Dialect) -> Migrator {
    let set = match dialect {
        Dialect::Sqlite => &SQLITE_MIGRATIONS,
        Dialect::Postgres => &POSTGRES_MIGRATIONS,
    };
    Migrator {
        migrations: Cow::Owned(
            set.iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(*d),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect(),
        ),
        ..Migrator::DEFAULT
    }
}

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 9;

/// The SQL backend (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlDb {
    pub(super) pool: AnyPool,
    pub(super) dialect: Dialect,
}

impl SqlDb {
    /// Opens (creating) the database at `url` and brings its schema up to
    /// date.
    pub async fn open(url: &DbUrl) -> DbResult<SqlDb> {
        sqlx::any::install_default_drivers();
        let (dialect, options, pool) = match url {
            DbUrl::Sqlite(path) => {
                let file = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true);
                let options = AnyConnectOptions::from_url(&file.to_url_lossy())
                    .map_err(sql("reading the SQLite path"))?;
                let pool = AnyPoolOptions::new().max_connections(4).after_connect(
                    |conn: &mut AnyConnection, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await
                            .map(|_| ())
                        })
                    },
                );
                (Dialect::Sqlite, options, pool)
            }
            DbUrl::Postgres(u) => {
                create_postgres_database(u).await?;
                let options = u
                    .parse::<AnyConnectOptions>()
                    .map_err(sql("reading the PostgreSQL URL"))?;
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30));
                (Dialect::Postgres, options, pool)
            }
        };
        let pool = pool
            .connect_with(options)
            .await
            .map_err(sql("opening the database"))?;
        migrator(dialect).run(&pool).await?;
        Ok(SqlDb { pool, dialect })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// Creates the URL's database when the server lacks it (two replicas
/// starting together may race; the loser finds it made).
async fn create_postgres_database(url: &str) -> DbResult<()> {
    use sqlx::migrate::MigrateDatabase;
    use sqlx::Postgres;
    if Postgres::database_exists(url)
        .await
        .map_err(sql("connecting to PostgreSQL"))?
    {
        return Ok(());
    }
    match Postgres::create_database(url).await {
        Ok(()) => Ok(()),
        Err(e) => match Postgres::database_exists(url).await {
            Ok(true) => Ok(()),
            _ => Err(DbError::Sql {
                doing: "creating the database (create it, or give the role CREATEDB)",
                source: e,
            }),
        },
    }
}

impl SqlDb {
    /// Everything, read in one transaction (a consistent copy of a fleet
    /// that keeps running).
    async fn load_inner(&self) -> DbResult<Snapshot> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("starting a transaction"))?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(sql("starting a consistent read"))?;
        }
        let snap = super::sql_load::load_all(&mut tx).await?;
        tx.commit().await.map_err(sql("ending the read"))?;
        Ok(snap)
    }
}

async fn apply_change(tx: &mut Transaction<'_, Any>, c: &Change) -> DbResult<()> {
    match c {
        Change::PutRelease(r) => {
            let m = &r.meta;
            sqlx::query(
                "INSERT INTO releases (model, version, meta, published_at, revoked_at, revoke_reason) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(m.model.as_str())
            .bind(&m.version)
            .bind(to_json(m))
            .bind(secs(r.published_at))
            .bind(r.revoked.as_ref().map(|x| secs(x.at)))
            .bind(r.revoked.as_ref().map(|x| x.reason.clone()))
            .execute(&mut **tx)
            .await
            .map_err(sql("storing a release"))?;
            for v in &m.variants {
                sqlx::query(
                    "INSERT INTO variants (model, version, digest, length, quantization) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(m.model.as_str())
                .bind(&m.version)
                .bind(v.digest.map(|d| d.to_string()).unwrap_or_default())
                .bind(v.length.map(|l| i64::try_from(l).unwrap_or(i64::MAX)).unwrap_or(0))
                .bind(&v.quantization)
                .execute(&mut **tx)
                .await
                .map_err(sql("storing a variant"))?;
            }
        }
        Change::Revoke {
            model,
            version,
            revocation,
        } => {
            sqlx::query("UPDATE releases SET revoked_at = $1, revoke_reason = $2 WHERE model = $3 AND version = $4")
                .bind(secs(revocation.at))
                .bind(&revocation.reason)
                .bind(model.as_str())
                .bind(version)
                .execute(&mut **tx)
                .await
                .map_err(sql("revoking a release"))?;
        }
        Change::PutChannel { name, created_at } => {
            sqlx::query(
                "INSERT INTO channels (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(secs(*created_at))
            .execute(&mut **tx)
            .await
            .map_err(sql("creating a channel"))?;
        }
        Change::ChannelRelease { channel, entry } => {
            sqlx::query(
                "INSERT INTO channel_releases (channel, model, version, at) VALUES ($1, $2, $3, $4)",
            )
            .bind(channel)
            .bind(entry.model.as_str())
            .bind(&entry.version)
            .bind(secs(entry.at))
            .execute(&mut **tx)
            .await
            .map_err(sql("setting a channel's release"))?;
        }
        Change::PutRollout(r) => {
            sqlx::query(
                "INSERT INTO rollouts (id, body, model, version, channel, state) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body, state = excluded.state",
            )
            .bind(i64::try_from(r.id).unwrap_or(i64::MAX))
            .bind(to_json(r))
            .bind(r.model.as_str())
            .bind(&r.version)
            .bind(&r.channel)
            .bind(r.state.as_str())
            .execute(&mut **tx)
            .await
            .map_err(sql("storing a rollout"))?;
        }
        Change::Pin {
            device_id,
            model,
            version,
        } => {
            let q = match version {
                Some(v) => sqlx::query(
                    "INSERT INTO pins (device_id, model, version) VALUES ($1, $2, $3)
                     ON CONFLICT (device_id, model) DO UPDATE SET version = excluded.version",
                )
                .bind(device_id)
                .bind(model.as_str())
                .bind(v),
                None => sqlx::query("DELETE FROM pins WHERE device_id = $1 AND model = $2")
                    .bind(device_id)
                    .bind(model.as_str()),
            };
            q.execute(&mut **tx)
                .await
                .map_err(sql("pinning a device"))?;
        }
        Change::DeviceChannel { device_id, channel } => {
            sqlx::query("UPDATE devices SET channel = $1 WHERE id = $2")
                .bind(channel)
                .bind(device_id)
                .execute(&mut **tx)
                .await
                .map_err(sql("moving a device to a channel"))?;
        }
        Change::Freeze(f) => {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('frozen', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(to_json(f))
            .execute(&mut **tx)
            .await
            .map_err(sql("setting the kill switch"))?;
        }
        Change::PutAppKey {
            hash,
            label,
            created_at,
            app,
        } => {
            sqlx::query(
                "INSERT INTO app_keys (hash, label, created_at, app) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(hash.to_string())
            .bind(label)
            .bind(secs(*created_at))
            .bind(app)
            .execute(&mut **tx)
            .await
            .map_err(sql("storing an app key"))?;
        }
        Change::PutContentKey {
            digest,
            key,
            created_at,
        } => {
            sqlx::query(
                "INSERT INTO content_keys (digest, key, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (digest) DO UPDATE SET key = excluded.key, created_at = excluded.created_at",
            )
            .bind(digest.to_string())
            .bind(crate::keys::key32_to_base64(key))
            .bind(secs(*created_at))
            .execute(&mut **tx)
            .await
            .map_err(sql("storing a content key"))?;
        }
        Change::RevokeDevice { device_id, at } => {
            sqlx::query("UPDATE devices SET revoked_at = $1 WHERE id = $2")
                .bind(secs(*at))
                .bind(device_id)
                .execute(&mut **tx)
                .await
                .map_err(sql("revoking a device"))?;
        }
        Change::Account(c) => super::sql_accounts::apply(tx, c).await?,
    }
    Ok(())
}

async fn write_device(tx: &mut Transaction<'_, Any>, w: &DeviceWrite) -> DbResult<()> {
    match w {
        DeviceWrite::Register(d) => {
            sqlx::query(
                "INSERT INTO devices (id, token_hash, channel, registered_at, public_key, app) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&d.id)
            .bind(d.token_hash.to_string())
            .bind(&d.channel)
            .bind(secs(d.registered_at))
            .bind(d.public_key.map(|k| crate::keys::key32_to_base64(&k)))
            .bind(&d.app)
            .execute(&mut **tx)
            .await
            .map_err(sql("registering a device"))?;
        }
        DeviceWrite::CheckIn {
            device_id,
            at,
            profile,
            blocked,
            issued,
            first_issued,
        } => {
            // The common case (nothing changed but the time) is batched by
            // the caller into one statement; see `write_devices_inner`.
            if let Some(p) = profile {
                sqlx::query("UPDATE devices SET profile = $1 WHERE id = $2")
                    .bind(to_json(p))
                    .bind(device_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(sql("storing a device profile"))?;
            }
            if let Some(b) = blocked {
                sqlx::query("UPDATE devices SET blocked = $1 WHERE id = $2")
                    .bind(to_json(b))
                    .bind(device_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(sql("storing a device's blocked releases"))?;
            }
            for i in issued {
                sqlx::query(
                    "INSERT INTO issued (device_id, model, manifest_version, content_key, model_version, expires_at, envelope)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (device_id, model) DO UPDATE SET manifest_version = excluded.manifest_version,
                       content_key = excluded.content_key, model_version = excluded.model_version,
                       expires_at = excluded.expires_at, envelope = excluded.envelope",
                )
                .bind(device_id)
                .bind(i.model.as_str())
                .bind(i64::try_from(i.manifest_version).unwrap_or(i64::MAX))
                .bind(i.content_key.to_string())
                .bind(&i.model_version)
                .bind(secs(i.expires_at))
                .bind(to_json(&i.envelope))
                .execute(&mut **tx)
                .await
                .map_err(sql("storing an issued manifest"))?;
            }
            for (m, v) in first_issued {
                sqlx::query(
                    "INSERT INTO first_issued (device_id, model, model_version, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(device_id)
                .bind(m.as_str())
                .bind(v)
                .bind(secs(*at))
                .execute(&mut **tx)
                .await
                .map_err(sql("recording when a release was first issued"))?;
            }
        }
    }
    Ok(())
}

/// The advisory-lock key of change-log positions ("outlog" in ASCII).
const CHANGE_LOG_KEY: i64 = 0x6f75_746c_6f67;

/// Appends a commit's changes to the change log; returns their position.
/// Positions are handed out under a lock the transaction holds until it
/// ends (PostgreSQL; SQLite has one writer anyway), so they become visible
/// in order and a replica reading "after N" never skips one.
async fn log_changes(
    tx: &mut Transaction<'_, Any>,
    dialect: Dialect,
    changes: &[Change],
) -> DbResult<u64> {
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT CAST(pg_advisory_xact_lock($1) AS TEXT)")
            .bind(CHANGE_LOG_KEY)
            .execute(&mut **tx)
            .await
            .map_err(sql("taking the change log's lock"))?;
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO change_log (id, changes) SELECT COALESCE(MAX(id), 0) + 1, $1 FROM change_log RETURNING id",
    )
    .bind(to_json(&changes))
    .fetch_one(&mut **tx)
    .await
    .map_err(sql("writing the change log"))?;
    Ok(u64::try_from(id).unwrap_or(0))
}

impl SqlDb {
    async fn commit_inner(&self, changes: Vec<Change>, audit: AuditRecord) -> DbResult<u64> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("starting a transaction"))?;
        for c in &changes {
            apply_change(&mut tx, c).await?;
        }
        sqlx::query(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(secs(audit.at))
        .bind(&audit.actor)
        .bind(&audit.action)
        .bind(&audit.target)
        .bind(audit.detail.to_string())
        .execute(&mut *tx)
        .await
        .map_err(sql("writing the audit log"))?;
        // Last, so the change log's lock is held as briefly as possible.
        let position = if changes.is_empty() {
            0
        } else {
            log_changes(&mut tx, self.dialect, &changes).await?
        };
        tx.commit().await.map_err(sql("committing"))?;
        Ok(position)
    }

    async fn write_devices_inner(&self, writes: Vec<DeviceWrite>) -> DbResult<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("starting a transaction"))?;
        // Last-seen times, grouped by second: one statement per second.
        let mut seen: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for w in &writes {
            write_device(&mut tx, w).await?;
            if let DeviceWrite::CheckIn { device_id, at, .. } = w {
                seen.entry(secs(*at)).or_default().push(device_id);
            }
        }
        for (at, ids) in seen {
            sqlx::query(
                match self.dialect {
                    Dialect::Sqlite => "UPDATE devices SET last_seen_at = $1 WHERE id IN (SELECT value FROM json_each($2))",
                    Dialect::Postgres => "UPDATE devices SET last_seen_at = $1 WHERE id IN (SELECT jsonb_array_elements_text($2::jsonb))",
                },
            )
            .bind(at)
            .bind(to_json(&ids))
            .execute(&mut *tx)
            .await
            .map_err(sql("recording check-ins"))?;
        }
        tx.commit().await.map_err(sql("committing device writes"))
    }

    async fn audit_inner(&self, limit: u32, before: Option<u64>) -> DbResult<Vec<AuditRecord>> {
        let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(sql("reading the audit log"))?;
        rows.iter()
            .map(|row| {
                let detail: String = row.get("detail");
                Ok(AuditRecord {
                    id: u64::try_from(row.get::<i64, _>("id")).unwrap_or(0),
                    at: ts(row.get("at")),
                    actor: row.get("actor"),
                    action: row.get("action"),
                    target: row.get("target"),
                    detail: serde_json::from_str(&detail).map_err(corrupt("audit detail"))?,
                })
            })
            .collect()
    }
}

impl Db for SqlDb {
    fn load(&self) -> DbFuture<'_, Snapshot> {
        Box::pin(self.load_inner())
    }

    fn commit(&self, changes: Vec<Change>, audit: AuditRecord) -> DbFuture<'_, u64> {
        Box::pin(self.commit_inner(changes, audit))
    }

    fn write_devices(&self, writes: Vec<DeviceWrite>) -> DbFuture<'_, ()> {
        Box::pin(self.write_devices_inner(writes))
    }

    fn reserve_versions(&self, block: u64) -> DbFuture<'_, u64> {
        Box::pin(self.reserve_versions_inner(block))
    }

    fn changes_since(&self, after: u64) -> DbFuture<'_, Vec<(u64, Vec<Change>)>> {
        Box::pin(self.changes_since_inner(after))
    }

    fn last_change(&self) -> DbFuture<'_, u64> {
        Box::pin(self.last_change_inner())
    }

    fn lease(
        &self,
        name: String,
        holder: String,
        now: u64,
        ttl_s: u64,
    ) -> DbFuture<'_, Option<u64>> {
        Box::pin(async move { self.lease_inner(&name, &holder, now, ttl_s).await })
    }

    fn admin_lock(&self) -> DbFuture<'_, Option<super::AdminLock>> {
        Box::pin(self.admin_lock_inner())
    }

    fn load_device(&self, by: super::DeviceKey) -> DbFuture<'_, Option<StoredDevice>> {
        Box::pin(self.load_device_inner(by))
    }

    fn audit_log(&self, limit: u32, before: Option<u64>) -> DbFuture<'_, Vec<AuditRecord>> {
        Box::pin(self.audit_inner(limit, before))
    }

    fn write_telemetry(
        &self,
        rows: TelemetryRows,
        rolled_before_minute: u64,
        forget_before_s: u64,
    ) -> DbFuture<'_, ()> {
        Box::pin(self.write_telemetry_inner(rows, rolled_before_minute, forget_before_s))
    }

    fn load_telemetry(&self, since_s: u64) -> DbFuture<'_, TelemetryRows> {
        Box::pin(self.load_telemetry_inner(since_s))
    }

    fn ingest_telemetry(
        &self,
        batch: crate::telemetry::BatchRecord,
        delta: crate::telemetry::shared::TelemetryDelta,
    ) -> DbFuture<'_, bool> {
        Box::pin(self.ingest_telemetry_inner(batch, delta))
    }

    fn roll_up_telemetry(&self, before_minute: u64, forget_before_s: u64) -> DbFuture<'_, ()> {
        Box::pin(self.roll_up_telemetry_inner(before_minute, forget_before_s))
    }

    fn telemetry_changes(
        &self,
        from: u64,
    ) -> DbFuture<'_, crate::telemetry::shared::TelemetryChanges> {
        Box::pin(self.telemetry_changes_inner(from))
    }
}
