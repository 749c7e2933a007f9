//! `cargo xtask bench-sealed [--rounds N]`: what sealing costs a model's
//! start (#23), in process, on both real models: the plain GGUF loaded
//! from the page cache (llama.cpp maps it) against the same file sealed
//! (XChaCha20-Poly1305 chunks) opened into a memfd in the background while
//! llama.cpp parses the metadata, exactly as `outpost serve --store` does.
//! Each round times plain then sealed: load, and load + the first greedy
//! token of a fixed prompt; medians and their ratios are printed (goal:
//! sealed <= 1.1x plain). The greedy tokens must agree.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use outpost_engine::gguf::Arrival;
use outpost_engine::{CancelToken, GenerateRequest, LoadOptions, Model, Prompt, SamplingParams};
use outpost_seal::stream::{seal, DEFAULT_CHUNK};
use outpost_seal::ContentKey;

/// Seconds to the loaded model, seconds to its first token, the tokens.
fn timed(
    load: impl FnOnce() -> Result<(Option<Arc<outpost_store::MemoryModel>>, Model)>,
    threads: u32,
) -> Result<(f64, f64, Vec<i32>)> {
    let t = Instant::now();
    let (backing, model) = load()?;
    let loaded = t.elapsed().as_secs_f64();
    let mut r = GenerateRequest::new(Prompt::Text(
        "The lighthouse keeper opened the bottle and read".into(),
    ));
    r.sampling = SamplingParams::greedy();
    r.max_tokens = Some(8);
    r.threads = Some(threads);
    let mut first = None;
    let done = model.generate(&r, &CancelToken::new(), |_| {
        first.get_or_insert(t.elapsed().as_secs_f64());
    })?;
    drop(model);
    drop(backing);
    Ok((loaded, first.context("no first token")?, done.tokens))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn run(args: &[String], root: &Path) -> Result<()> {
    let rounds: usize = args
        .windows(2)
        .find(|w| w[0] == "--rounds")
        .map(|w| w[1].parse().context("--rounds must be a positive integer"))
        .transpose()?
        .unwrap_or(5);
    let threads = 2;
    println!(
        "cpu: {} ({} cores); {rounds} rounds, plain then sealed; {threads} threads",
        cpu(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| model | load plain | load sealed | ratio | load+first token plain | sealed | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    let dir = std::env::temp_dir().join(format!("outpost-bench-sealed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for file in ["smollm2-135m.gguf", "gemma3-270m.gguf"] {
        let plain = root.join("models").join(file);
        if !plain.is_file() {
            bail!(
                "{} is missing: run scripts/fetch-models.sh",
                plain.display()
            );
        }
        let key = ContentKey::generate()?;
        let sealed = dir.join(format!("{file}.sealed"));
        {
            let len = std::fs::metadata(&plain)?.len();
            let mut input = std::io::BufReader::new(std::fs::File::open(&plain)?);
            let mut out = std::io::BufWriter::new(std::fs::File::create(&sealed)?);
            seal(&key, len, DEFAULT_CHUNK, &mut input, &mut out)?;
            std::io::Write::flush(&mut out)?;
        }
        // Both files in the page cache before the first timed round.
        std::fs::read(&plain)?;
        std::fs::read(&sealed)?;
        let mut s = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..rounds {
            let (load, first, want) = timed(
                || Ok((None, Model::load(&plain, &LoadOptions::default())?)),
                threads,
            )?;
            s[0].push(load);
            s[2].push(first);
            let (load, first, got) = timed(
                || {
                    let mem = Arc::new(outpost_store::open_sealed_background(&sealed, &key)?);
                    let m2 = mem.clone();
                    let opts = LoadOptions {
                        arrival: Some(Arrival::new(move |n| {
                            m2.wait_for(n).map_err(|e| e.to_string())
                        })),
                        ..LoadOptions::default()
                    };
                    let model = Model::load(&mem.path(), &opts)?;
                    Ok((Some(mem), model))
                },
                threads,
            )?;
            if got != want {
                bail!("{file}: the sealed model's greedy tokens differ from the plain file's");
            }
            s[1].push(load);
            s[3].push(first);
        }
        let [a, b, c, d] = s.each_mut().map(|v| median(v) * 1e3);
        println!(
            "| {file} | {a:.0} ms | {b:.0} ms | {:.2}x | {c:.0} ms | {d:.0} ms | {:.2}x |",
            b / a,
            d / c
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
