//! The device's telemetry spool: a bounded SQLite queue of telemetry
//! events (`<store>/telemetry.sqlite`). `outpost serve` appends one event
//! per request; the agent sends them to the fleet in batches and deletes
//! a batch only once the fleet acknowledged it. It survives restarts and
//! long offline periods; when full, the oldest events are dropped and
//! counted.
//!
//! Exactly once: a batch's id and events are fixed in the database before
//! the first send, so a resend after a lost answer carries the same id
//! and the fleet (which deduplicates batch ids) counts it once. Events
//! hold no prompt or response text: only what `TelemetryEvent` can carry.
//!
//! Several processes may open one spool (WAL mode, a busy timeout).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use outpost_protocol::telemetry::TelemetryEvent;
use rusqlite::{params, Connection, OptionalExtension};

/// Default bound on stored events.
pub const DEFAULT_MAX_EVENTS: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("telemetry spool {path}: {source}; if the file is damaged, move it aside (its events are lost) and restart")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "telemetry spool {path}: a stored event does not parse ({problem}); it was left in place"
    )]
    BadEvent { path: PathBuf, problem: String },
}

/// Counts, for status output and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// Events waiting (in a batch or not).
    pub pending: u64,
    /// Events dropped because the spool was full, since it was created.
    pub dropped: u64,
    /// Batches acknowledged, since it was created.
    pub acked_batches: u64,
}

/// Events fixed under one batch id until acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolBatch {
    pub batch_id: String,
    pub events: Vec<TelemetryEvent>,
}

/// An open spool.
pub struct Spool {
    path: PathBuf,
    conn: Mutex<Connection>,
    max_events: u64,
}

impl Spool {
    /// Opens (creating if needed) the spool at `path`, keeping at most
    /// `max_events` events.
    pub fn open(path: &Path, max_events: u64) -> Result<Spool, SpoolError> {
        let db = |source| SpoolError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 batch TEXT,
                 body TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS events_batch ON events(batch);
             CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);",
        )
        .map_err(db)?;
        let spool = Spool {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            max_events: max_events.max(1),
        };
        spool.with(|c| {
            let tx = c.transaction()?;
            if get(&tx, "spool_id")?.is_none() {
                tx.execute(
                    "INSERT INTO meta (k, v) VALUES ('spool_id', ?1)",
                    params![random_id()],
                )?;
            }
            tx.commit()
        })?;
        Ok(spool)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SpoolError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c).map_err(|source| SpoolError::Db {
            path: self.path.clone(),
            source,
        })
    }

    /// Appends events (one transaction); drops the oldest beyond the bound.
    pub fn push(&self, events: &[TelemetryEvent]) -> Result<(), SpoolError> {
        let bodies = events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| SpoolError::BadEvent {
                path: self.path.clone(),
                problem: e.to_string(),
            })?;
        let max = self.max_events as i64;
        self.with(|c| {
            let tx = c.transaction()?;
            for b in &bodies {
                tx.execute("INSERT INTO events (body) VALUES (?1)", params![b])?;
            }
            let dropped = tx.execute(
                "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1",
                params![max],
            )?;
            if dropped > 0 {
                add(&tx, "dropped", dropped as i64)?;
            }
            tx.commit()
        })
    }

    /// The batch to send next: the unacknowledged one if there is one
    /// (same id, same events), else the oldest `max` waiting events under
    /// a new id. `None` when nothing waits.
    pub fn next_batch(&self, max: usize) -> Result<Option<SpoolBatch>, SpoolError> {
        let rows = self.with(|c| {
            let tx = c.transaction()?;
            let open: Option<String> = tx
                .query_row(
                    "SELECT batch FROM events WHERE batch IS NOT NULL ORDER BY seq LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let id = match open {
                Some(id) => id,
                None => {
                    let waiting: i64 =
                        tx.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
                    if waiting == 0 {
                        return Ok(None);
                    }
                    let spool_id = get(&tx, "spool_id")?.unwrap_or(0);
                    let n = add(&tx, "next_batch", 1)?;
                    let id = format!("sp{spool_id:016x}-{n}");
                    tx.execute(
                        "UPDATE events SET batch = ?1 WHERE seq IN
                             (SELECT seq FROM events WHERE batch IS NULL ORDER BY seq LIMIT ?2)",
                        params![id, max as i64],
                    )?;
                    id
                }
            };
            let bodies = {
                let mut st = tx.prepare("SELECT body FROM events WHERE batch = ?1 ORDER BY seq")?;
                let rows = st.query_map(params![id], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()?
            };
            tx.commit()?;
            Ok(Some((id, bodies)))
        })?;
        let Some((batch_id, bodies)) = rows else {
            return Ok(None);
        };
        let events = bodies
            .iter()
            .map(|b| serde_json::from_str(b))
            .collect::<Result<Vec<TelemetryEvent>, _>>()
            .map_err(|e| SpoolError::BadEvent {
                path: self.path.clone(),
                problem: e.to_string(),
            })?;
        Ok(Some(SpoolBatch { batch_id, events }))
    }

    /// Deletes an acknowledged batch; returns how many events it held.
    pub fn ack(&self, batch_id: &str) -> Result<u64, SpoolError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute("DELETE FROM events WHERE batch = ?1", params![batch_id])?;
            if n > 0 {
                add(&tx, "acked_batches", 1)?;
            }
            tx.commit()?;
            Ok(n as u64)
        })
    }

    pub fn stats(&self) -> Result<SpoolStats, SpoolError> {
        self.with(|c| {
            let pending: i64 = c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
            Ok(SpoolStats {
                pending: pending as u64,
                dropped: get(c, "dropped")?.unwrap_or(0) as u64,
                acked_batches: get(c, "acked_batches")?.unwrap_or(0) as u64,
            })
        })
    }
}

fn get(c: &Connection, k: &str) -> rusqlite::Result<Option<i64>> {
    c.query_row("SELECT v FROM meta WHERE k = ?1", params![k], |r| r.get(0))
        .optional()
}

/// Adds `n` to counter `k`; returns the new value.
fn add(c: &Connection, k: &str, n: i64) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO meta (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = v + ?2",
        params![k, n],
    )?;
    Ok(get(c, k)?.unwrap_or(n))
}

/// 63 random bits: batch ids of two spools (two devices, or a spool
/// recreated after damage) never collide.
fn random_id() -> i64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (t as u64 ^ u64::from(std::process::id()) << 32).to_le_bytes();
    }
    (u64::from_le_bytes(b) >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use outpost_protocol::manifest::Version;
    use outpost_protocol::telemetry::{EventData, Inference};
    use outpost_protocol::{Digest, ModelName, Timestamp};

    fn event(i: u32) -> TelemetryEvent {
        TelemetryEvent {
            at: Timestamp::from_unix_seconds(1_800_000_000 + u64::from(i)),
            model: ModelName::parse("m").expect("name"),
            model_version: "1.0.0".into(),
            model_digest: Digest::sha256(b"m"),
            engine_version: Version::parse("0.1.0").expect("v"),
            app_version: Version::parse("0.1.0").expect("v"),
            data: EventData::Inference(Inference {
                ttft_ms: 1.0,
                latency_ms: f64::from(i),
                tokens: i,
                tok_s: 10.0,
                cached_tokens: 0,
                error: None,
            }),
        }
    }

    #[test]
    fn batches_are_stable_until_acked_and_survive_reopening() {
        let dir = TestDir::new("spool");
        let path = dir.path().join("t.sqlite");
        let spool = Spool::open(&path, 100).expect("open");
        spool
            .push(&(0..5).map(event).collect::<Vec<_>>())
            .expect("push");
        let b1 = spool.next_batch(3).expect("batch").expect("some");
        assert_eq!(b1.events, (0..3).map(event).collect::<Vec<_>>());
        // Not acknowledged: the same batch again, also after a restart.
        drop(spool);
        let spool = Spool::open(&path, 100).expect("reopen");
        spool.push(&[event(5)]).expect("push");
        assert_eq!(spool.next_batch(3).expect("batch"), Some(b1.clone()));
        assert_eq!(spool.ack(&b1.batch_id).expect("ack"), 3);
        let b2 = spool.next_batch(10).expect("batch").expect("some");
        assert_ne!(b2.batch_id, b1.batch_id);
        assert_eq!(b2.events, (3..6).map(event).collect::<Vec<_>>());
        assert_eq!(spool.ack(&b2.batch_id).expect("ack"), 3);
        assert_eq!(spool.next_batch(10).expect("batch"), None);
        let st = spool.stats().expect("stats");
        assert_eq!((st.pending, st.dropped, st.acked_batches), (0, 0, 2));
        // Acking again is harmless.
        assert_eq!(spool.ack(&b2.batch_id).expect("ack"), 0);
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_counts_them() {
        let dir = TestDir::new("spool-full");
        let spool = Spool::open(&dir.path().join("t.sqlite"), 10).expect("open");
        for i in 0..25 {
            spool.push(&[event(i)]).expect("push");
        }
        let st = spool.stats().expect("stats");
        assert_eq!((st.pending, st.dropped), (10, 15));
        let b = spool.next_batch(100).expect("batch").expect("some");
        assert_eq!(b.events, (15..25).map(event).collect::<Vec<_>>());
    }

    #[test]
    fn two_spools_never_share_batch_ids() {
        let dir = TestDir::new("spool-ids");
        let a = Spool::open(&dir.path().join("a.sqlite"), 10).expect("a");
        let b = Spool::open(&dir.path().join("b.sqlite"), 10).expect("b");
        a.push(&[event(1)]).expect("push");
        b.push(&[event(1)]).expect("push");
        let (ia, ib) = (
            a.next_batch(5).expect("a").expect("a").batch_id,
            b.next_batch(5).expect("b").expect("b").batch_id,
        );
        assert_ne!(ia, ib);
        assert!(ia.len() <= 64 && ia.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
