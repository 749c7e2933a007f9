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
    const W: usize = 16;
    // Fixed-width blocks and independent lanes let the compiler keep the
    // loop in SIMD registers (no bounds checks, no serial dependency).
    let mut acc = [0f32; W];
    let (ca, cb) = (a.chunks_exact(W), b.chunks_exact(W));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        let (Ok(x), Ok(y)) = (<&[f32; W]>::try_from(x), <&[f32; W]>::try_from(y)) else {
            continue;
        };
        for j in 0..W {
            acc[j] += x[j] * y[j];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}
