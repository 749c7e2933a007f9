//! `cargo xtask bench-index [--vectors N]`: the on-device index at scale,
//! in process: N unit vectors of 384 dimensions (MiniLM's width; seeded
//! pseudo-random, since an exact scan's cost does not depend on where the
//! vectors lie) added in documents of 1 000 chunks; then 200 queries timed
//! (top-10, the scan alone and with the chunks' rows read from SQLite),
//! recall@10 against a brute force in f64 written here, the time to open
//! the index (reading every vector), file size and resident memory.

use std::time::Instant;

use anyhow::Result;
use outpost_index::{Index, NewChunk};

const DIMS: usize = 384;

fn rng(state: &mut u64) -> f32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    ((*state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
}

fn unit(state: &mut u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS).map(|_| rng(state)).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(args: &[String]) -> Result<()> {
    let n: usize = args
        .windows(2)
        .find(|w| w[0] == "--vectors")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("outpost-bench-index-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.sqlite");
    let mut steps = crate::progress::Steps::new(3);
    steps.next(&format!("adding {n} vectors"));
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut all = Vec::with_capacity(n);
    let t = Instant::now();
    {
        let mut ix = Index::create(&path, "bench", "sha256:bench", DIMS, 128, 32)?;
        let mut doc = 0;
        while all.len() < n {
            let take = 1000.min(n - all.len());
            let chunks: Vec<NewChunk> = (0..take)
                .map(|i| {
                    let v = unit(&mut state);
                    all.push(v.clone());
                    NewChunk {
                        start: i,
                        end: i + 1,
                        text: format!("chunk {i} of doc {doc}"),
                        vector: v,
                    }
                })
                .collect();
            ix.add(
                &format!("doc-{doc}"),
                "bench",
                take,
                &serde_json::Value::Null,
                &chunks,
            )?;
            doc += 1;
        }
    }
    let add_s = t.elapsed().as_secs_f64();
    steps.next("opening the index");
    let rss_before = rss_kib("VmRSS:");
    let t = Instant::now();
    let ix = Index::open(&path)?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_index = rss_kib("VmRSS:").saturating_sub(rss_before);
    steps.next("200 queries");
    let queries: Vec<Vec<f32>> = (0..200).map(|_| unit(&mut state)).collect();
    let (mut scan, mut full) = (Vec::new(), Vec::new());
    let mut found = 0;
    for q in &queries {
        let t = Instant::now();
        let top = ix.nearest(q, 10)?;
        scan.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let hits = ix.search(q, 10)?;
        full.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(hits.len(), 10);
        let mut exact: Vec<(f64, usize)> = all
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    v.iter()
                        .zip(q)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum(),
                    i,
                )
            })
            .collect();
        exact.select_nth_unstable_by(9, |a, b| b.0.total_cmp(&a.0));
        let want: std::collections::HashSet<i64> =
            exact[..10].iter().map(|&(_, i)| i as i64 + 1).collect();
        found += top.iter().filter(|(_, id)| want.contains(id)).count();
    }
    drop(steps);
    scan.sort_by(f64::total_cmp);
    full.sort_by(f64::total_cmp);
    let size = std::fs::metadata(&path)?.len()
        + std::fs::metadata(dir.join("bench.sqlite-wal")).map_or(0, |m| m.len());
    println!(
        "outpost-index, {n} vectors x {DIMS} dims, exact top-10, one thread, {}\n",
        outpost_variants::pipeline::cpu_name()
    );
    println!("| measure | value |\n| --- | ---: |");
    println!(
        "| recall@10 vs f64 brute force (200 queries) | {:.4} |",
        found as f64 / 2000.0
    );
    println!("| query p50, scan only | {:.2} ms |", pct(&scan, 0.5));
    println!("| query p99, scan only | {:.2} ms |", pct(&scan, 0.99));
    println!(
        "| query p50, with rows from SQLite | {:.2} ms |",
        pct(&full, 0.5)
    );
    println!(
        "| query p99, with rows from SQLite | {:.2} ms |",
        pct(&full, 0.99)
    );
    println!("| open (read every vector) | {open_ms:.0} ms |");
    println!(
        "| resident memory of the open index | {:.0} MiB |",
        rss_index as f64 / 1024.0
    );
    println!("| file size | {:.0} MiB |", size as f64 / 1048576.0);
    println!("| add {n} vectors (documents of 1 000, one transaction each) | {add_s:.1} s |");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
