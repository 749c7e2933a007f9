//! What a tier costs on this host: load time, pp512 and tg128 (as
//! llama-bench measures them) and peak resident memory. Peak RSS is a
//! per-process number, so each tier is measured in its own process: the
//! CLI runs `outpost variants measure FILE`, which calls [`measure`] and
//! prints the result as JSON.

use std::path::Path;
use std::time::Instant;

use outpost_engine::{BenchParams, LoadOptions, Model};
use outpost_protocol::variants::Cost;

use crate::VariantsError;

/// Peak resident set size of this process (Linux `VmHWM`), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Loads `path`, runs pp512 and tg128 once each, and reports the cost.
/// Call it in a fresh process for a meaningful peak RSS.
pub fn measure(path: &Path, threads: Option<u32>) -> Result<Cost, VariantsError> {
    let started = Instant::now();
    let model = Model::load(path, &LoadOptions::default())?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let r = model.bench(&BenchParams {
        n_prompt: 512,
        n_gen: 128,
        reps: 1,
        threads,
    })?;
    let tps = |name: &str| {
        r.stats
            .iter()
            .find(|s| s.test == name)
            .map_or(0.0, |s| s.mean())
    };
    Ok(Cost {
        load_ms,
        pp512_tps: tps("pp512"),
        tg128_tps: tps("tg128"),
        peak_rss_bytes: peak_rss().unwrap_or(0),
    })
}
