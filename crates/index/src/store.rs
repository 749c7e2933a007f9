//! The index file: schema, atomic adds and deletes, and the in-memory
//! vectors that searches scan.

use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// Everything an index can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "index {path} does not exist: create it with `outpost index create NAME --model MODEL`"
    )]
    Missing { path: PathBuf },
    #[error("index {path} already exists (made with model {model}); add to it, or remove the file to start again")]
    Exists { path: PathBuf, model: String },
    #[error("a vector has {got} dimensions; this index holds {want} (model {model})")]
    Dimensions {
        got: usize,
        want: usize,
        model: String,
    },
    #[error("index {path} was made with model {made_with} ({digest}); embed with that model, not {asked}")]
    WrongModel {
        path: PathBuf,
        made_with: String,
        digest: String,
        asked: String,
    },
    #[error("document {0:?} is not in the index")]
    NoSuchDoc(String),
    #[error("invalid document id {0:?}: give 1 to 200 characters, no control characters")]
    BadId(String),
}

/// What an index was made with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexInfo {
    pub model: String,
    pub model_digest: String,
    pub dims: usize,
    pub chunk_tokens: usize,
    pub overlap: usize,
    pub docs: usize,
    pub chunks: usize,
}

/// A chunk to store with its vector.
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub vector: Vec<f32>,
}

/// A document in the index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Doc {
    pub id: String,
    pub source: String,
    pub chunks: usize,
    pub bytes: usize,
    pub metadata: serde_json::Value,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub doc: String,
    pub start: usize,
    pub end: usize,
    pub score: f32,
    pub text: String,
    pub metadata: serde_json::Value,
}

/// An open index.
pub struct Index {
    path: PathBuf,
    conn: Connection,
    info: IndexInfo,
    /// Chunk row ids and their vectors, row-major, for the scan.
    ids: Vec<i64>,
    vectors: Vec<f32>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    doc TEXT NOT NULL REFERENCES docs(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc);
";

fn check_id(id: &str) -> Result<(), IndexError> {
    if id.is_empty() || id.chars().count() > 200 || id.chars().any(char::is_control) {
        return Err(IndexError::BadId(id.to_string()));
    }
    Ok(())
}

/// Turns a SQLite error into one that names the index file.
fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> IndexError + Copy + '_ {
    move |source| IndexError::Db {
        path: path.to_path_buf(),
        source,
    }
}

/// Chunk row ids of document `id`.
fn rows_of(conn: &Connection, id: &str) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM chunks WHERE doc = ?1")?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    rows.collect()
}

fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Index {
    fn connect(path: &Path) -> Result<Connection, IndexError> {
        let db = db_err(path);
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        // FULL: a committed add survives power loss, not only a crash.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(conn)
    }

    /// Makes a new index at `path` for vectors of `dims` from `model`.
    pub fn create(
        path: &Path,
        model: &str,
        model_digest: &str,
        dims: usize,
        chunk_tokens: usize,
        overlap: usize,
    ) -> Result<Index, IndexError> {
        if path.exists() {
            let existing = Index::open(path)?;
            return Err(IndexError::Exists {
                path: path.to_path_buf(),
                model: existing.info.model,
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        let mut conn = Index::connect(path)?;
        let db = db_err(path);
        let tx = conn.transaction().map_err(db)?;
        for (k, v) in [
            ("model", model.to_string()),
            ("model_digest", model_digest.to_string()),
            ("dims", dims.to_string()),
            ("chunk_tokens", chunk_tokens.to_string()),
            ("overlap", overlap.to_string()),
        ] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![k, v],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        drop(conn);
        Index::open(path)
    }

    /// Opens an existing index and loads its vectors.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        if !path.is_file() {
            return Err(IndexError::Missing {
                path: path.to_path_buf(),
            });
        }
        let conn = Index::connect(path)?;
        let db = db_err(path);
        let meta = |key: &str| -> Result<String, IndexError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(db)?
                .ok_or_else(|| IndexError::Db {
                    path: path.to_path_buf(),
                    source: rusqlite::Error::InvalidParameterName(format!(
                        "meta key {key} is missing: not an Outpost index"
                    )),
                })
        };
        let num = |key: &str| -> Result<usize, IndexError> { Ok(meta(key)?.parse().unwrap_or(0)) };
        let mut info = IndexInfo {
            model: meta("model")?,
            model_digest: meta("model_digest")?,
            dims: num("dims")?,
            chunk_tokens: num("chunk_tokens")?,
            overlap: num("overlap")?,
            docs: 0,
            chunks: 0,
        };
        let mut ids = Vec::new();
        let mut vectors = Vec::new();
        {
            let mut stmt = conn
                .prepare("SELECT id, vector FROM chunks ORDER BY id")
                .map_err(db)?;
            let mut rows = stmt.query([]).map_err(db)?;
            while let Some(row) = rows.next().map_err(db)? {
                let id: i64 = row.get(0).map_err(db)?;
                let bytes: Vec<u8> = row.get(1).map_err(db)?;
                ids.push(id);
                vectors.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
        }
        info.chunks = ids.len();
        info.docs = conn
            .query_row("SELECT COUNT(*) FROM docs", [], |r| r.get::<_, i64>(0))
            .map_err(db)? as usize;
        Ok(Index {
            path: path.to_path_buf(),
            conn,
            info,
            ids,
            vectors,
        })
    }

    pub fn info(&self) -> &IndexInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses a model other than the one the index was made with.
    pub fn check_model(&self, name: &str, digest: &str) -> Result<(), IndexError> {
        if digest != self.info.model_digest {
            return Err(IndexError::WrongModel {
                path: self.path.clone(),
                made_with: self.info.model.clone(),
                digest: self.info.model_digest.clone(),
                asked: name.to_string(),
            });
        }
        Ok(())
    }

    /// Adds (or replaces) document `id` with its chunks, in one transaction.
    pub fn add(
        &mut self,
        id: &str,
        source: &str,
        bytes: usize,
        metadata: &serde_json::Value,
        chunks: &[NewChunk],
    ) -> Result<(), IndexError> {
        check_id(id)?;
        if let Some(c) = chunks.iter().find(|c| c.vector.len() != self.info.dims) {
            return Err(IndexError::Dimensions {
                got: c.vector.len(),
                want: self.info.dims,
                model: self.info.model.clone(),
            });
        }
        let db = db_err(&self.path);
        let tx = self.conn.transaction().map_err(db)?;
        let removed = rows_of(&tx, id).map_err(db)?;
        let replaced = tx
            .execute("DELETE FROM docs WHERE id = ?1", [id])
            .map_err(db)?;
        tx.execute(
            "INSERT INTO docs (id, source, bytes, metadata) VALUES (?1, ?2, ?3, ?4)",
            params![id, source, bytes as i64, metadata.to_string()],
        )
        .map_err(db)?;
        let mut added = Vec::with_capacity(chunks.len());
        {
            let mut stmt = tx
                .prepare("INSERT INTO chunks (doc, start, end, text, vector) VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(db)?;
            for c in chunks {
                added.push(
                    stmt.insert(params![
                        id,
                        c.start as i64,
                        c.end as i64,
                        c.text,
                        blob(&c.vector)
                    ])
                    .map_err(db)?,
                );
            }
        }
        tx.commit().map_err(db)?;
        // The file is committed; the in-memory copy follows it.
        self.drop_rows(&removed);
        self.ids.extend(&added);
        for c in chunks {
            self.vectors.extend(&c.vector);
        }
        self.info.docs += 1 - replaced.min(1);
        self.info.chunks = self.ids.len();
        Ok(())
    }

    /// Takes chunk rows out of the in-memory vectors.
    fn drop_rows(&mut self, rows: &[i64]) {
        if rows.is_empty() {
            return;
        }
        let gone: std::collections::HashSet<i64> = rows.iter().copied().collect();
        let d = self.info.dims;
        let mut keep_ids = Vec::with_capacity(self.ids.len());
        let mut keep_vecs = Vec::with_capacity(self.vectors.len());
        for (i, id) in self.ids.iter().enumerate() {
            if !gone.contains(id) {
                keep_ids.push(*id);
                keep_vecs.extend_from_slice(&self.vectors[i * d..(i + 1) * d]);
            }
        }
        self.ids = keep_ids;
        self.vectors = keep_vecs;
    }

    /// Removes document `id` and every chunk of it, in one transaction.
    pub fn remove(&mut self, id: &str) -> Result<(), IndexError> {
        let db = db_err(&self.path);
        let tx = self.conn.transaction().map_err(db)?;
        let removed = rows_of(&tx, id).map_err(db)?;
        let n = tx
            .execute("DELETE FROM docs WHERE id = ?1", [id])
            .map_err(db)?;
        if n == 0 {
            return Err(IndexError::NoSuchDoc(id.to_string()));
        }
        tx.commit().map_err(db)?;
        self.drop_rows(&removed);
        self.info.docs -= 1;
        self.info.chunks = self.ids.len();
        Ok(())
    }

    /// The documents, by id.
    pub fn docs(&self) -> Result<Vec<Doc>, IndexError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.id, d.source, d.bytes, d.metadata, COUNT(c.id) FROM docs d
                 LEFT JOIN chunks c ON c.doc = d.id GROUP BY d.id ORDER BY d.id",
            )
            .map_err(db_err(&self.path))?;
        let rows = stmt
            .query_map([], |r| {
                let meta: String = r.get(3)?;
                Ok(Doc {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    bytes: r.get::<_, i64>(2)? as usize,
                    metadata: serde_json::from_str(&meta).unwrap_or(serde_json::Value::Null),
                    chunks: r.get::<_, i64>(4)? as usize,
                })
            })
            .map_err(db_err(&self.path))?;
        rows.collect::<Result<_, _>>().map_err(db_err(&self.path))
    }

    /// The `k` chunks nearest to `query` (exact), best first; vectors are
    /// compared by dot product, which is the cosine for unit vectors.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, IndexError> {
        let top = self.nearest(query, k)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.doc, c.start, c.end, c.text, d.metadata FROM chunks c
                 JOIN docs d ON d.id = c.doc WHERE c.id = ?1",
            )
            .map_err(db_err(&self.path))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, row) in top {
            let hit = stmt
                .query_row([row], |r| {
                    let meta: String = r.get(4)?;
                    Ok(Hit {
                        doc: r.get(0)?,
                        start: r.get::<_, i64>(1)? as usize,
                        end: r.get::<_, i64>(2)? as usize,
                        text: r.get(3)?,
                        score,
                        metadata: serde_json::from_str(&meta).unwrap_or(serde_json::Value::Null),
                    })
                })
                .map_err(db_err(&self.path))?;
            hits.push(hit);
        }
        Ok(hits)
    }

    /// (score, chunk row id) of the `k` best, best first.
    pub fn nearest(&self, query: &[f32], k: usize) -> Result<Vec<(f32, i64)>, IndexError> {
        let d = self.info.dims;
        if query.len() != d {
            return Err(IndexError::Dimensions {
                got: query.len(),
                want: d,
                model: self.info.model.clone(),
            });
        }
        Ok(top_k(&self.vectors, d, &self.ids, query, k))
    }
}

/// Exact top-k by dot product over `vectors` (row-major, `d` wide).
pub fn top_k(vectors: &[f32], d: usize, ids: &[i64], query: &[f32], k: usize) -> Vec<(f32, i64)> {
    #[derive(PartialEq)]
    struct Entry(f32, i64);
    impl Eq for Entry {}
    impl PartialOrd for Entry {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Entry {
        // Reversed: the heap's top is the worst kept.
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
        }
    }
    if k == 0 || d == 0 {
        return Vec::new();
    }
    let mut heap = BinaryHeap::with_capacity(k + 1);
    for (row, v) in vectors.chunks_exact(d).enumerate() {
        let s = crate::dot(v, query);
        if heap.len() < k {
            heap.push(Entry(s, ids[row]));
        } else if heap.peek().is_some_and(|w: &Entry| s > w.0) {
            heap.pop();
            heap.push(Entry(s, ids[row]));
        }
    }
    let mut out: Vec<(f32, i64)> = heap.into_iter().map(|e| (e.0, e.1)).collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out
}
