//! How values cross into and out of SQL, for every backend: the error of a
//! failed statement (what was being done), stored JSON, digests and model
//! names read back (a bad one is `DbError::Corrupt`), and unsigned numbers
//! in signed integer columns.

use std::str::FromStr;

use outpost_protocol::manifest::ModelName;
use outpost_protocol::{Digest, Timestamp};

use super::error::{DbError, DbResult};

pub(super) fn sql(doing: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
    move |source| DbError::Sql { doing, source }
}

pub(super) fn corrupt(what: &'static str) -> impl FnOnce(serde_json::Error) -> DbError {
    move |e| DbError::Corrupt {
        what,
        problem: e.to_string(),
    }
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Fleet types are plain data (strings, numbers, maps with string
    // keys), which always serialize.
    serde_json::to_string(v).unwrap_or_default()
}

pub(super) fn digest(s: &str, what: &'static str) -> DbResult<Digest> {
    Digest::from_str(s).map_err(|e| DbError::Corrupt {
        what,
        problem: e.to_string(),
    })
}

pub(super) fn model(s: &str) -> DbResult<ModelName> {
    ModelName::parse(s).map_err(|e| DbError::Corrupt {
        what: "model name",
        problem: e.to_string(),
    })
}

/// A count or time for an INTEGER column (saturating).
pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An INTEGER column's value as a count or time (negative: 0).
pub(super) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A stored time (unix seconds; negative: the epoch).
pub(super) fn ts(v: i64) -> Timestamp {
    Timestamp::from_unix_seconds(u64::try_from(v).unwrap_or(0))
}

/// A time for an INTEGER column (saturating).
pub(super) fn secs(t: Timestamp) -> i64 {
    i64::try_from(t.unix_seconds()).unwrap_or(i64::MAX)
}
