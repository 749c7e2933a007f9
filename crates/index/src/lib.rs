//! The on-device vector index: one SQLite file per index holding its
//! documents, their chunks (byte ranges into the document, the text) and
//! each chunk's vector; search is an exact top-k over all vectors, held in
//! memory while the index is open.
//!
//! Why exact search in SQLite (measured by `cargo xtask bench-index`): at
//! 100 000 vectors of 384 dimensions a scan takes a few milliseconds on one
//! core with recall 1.0 by construction, one file holds text, metadata and
//! vectors, and SQLite's transactions make every add and delete atomic (a
//! crash leaves the index as it was before or after, never between). An
//! approximate graph index (HNSW) would answer faster at millions of
//! vectors, at the price of recall below 1, a second file to keep in step
//! and rebuilds on delete — not needed at on-device sizes.
//!
//! This crate knows no model: callers embed (and count tokens) and pass
//! vectors in; the index checks that every vector has its dimensions and
//! records which model made them, so that a search with another model is
//! refused.

pub mod chunk;
pub mod ground;
mod store;

pub use chunk::{chunk, Chunk};
pub use store::{Doc, Hit, Index, IndexError, IndexInfo, NewChunk};

/// Cosine similarity when both vectors are unit length: the dot product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight accumulators let the compiler vectorise the loop.
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for j in 0..8 {
            acc[j] += a[i * 8 + j] * b[i * 8 + j];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..a.len().min(b.len()) {
        sum += a[i] * b[i];
    }
    sum
}
