//! `outpost variants`: build quantization tiers from one checkpoint and
//! measure them (`build`), or measure one file in this process (`measure`,
//! used by `build` for per-tier peak memory).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use indicatif::ProgressBar;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use outpost_protocol::variants::Cost;
use outpost_variants::{BuildOptions, Step, VariantsError};

use crate::{models, progress};

#[derive(Debug, Args)]
pub struct VariantsArgs {
    #[command(subcommand)]
    pub command: VariantsCommand,
}

#[derive(Debug, Subcommand)]
pub enum VariantsCommand {
    /// Quantize SOURCE into tiers, score each against SOURCE on the same
    /// text (perplexity, KL divergence, same-top-token %, RMS Δp; the
    /// llama-perplexity method), measure size, load time, pp512/tg128 and
    /// peak RSS, fingerprint each for the device canary, and recommend a
    /// tier per device class. Writes the tier files, variants.json,
    /// report.md and quality-vs-size.svg into --out. Interrupted? Run it
    /// again: finished steps are reused.
    ///
    /// Examples:
    ///   outpost variants build smollm2-135m --out variants/smollm2
    ///   outpost variants build model-f16.gguf --tiers q8_0,q4_k_m,q4_0 --out v/ --chunks 8
    ///   outpost variants build gemma3-270m --out v/gemma --devices my-devices.toml
    #[command(verbatim_doc_comment)]
    Build(BuildArgs),
    /// Load one GGUF, run pp512 and tg128 once, print its cost as JSON
    /// (build runs this in a child process per tier, for its peak RSS).
    #[command(hide = true)]
    Measure {
        file: PathBuf,
        #[arg(long, short = 't')]
        threads: Option<u32>,
    },
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The checkpoint: a GGUF of any precision (path or fetched model name).
    pub source: String,
    /// Output folder (created).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Comma-separated tiers, or `default` (q8_0, q6_k, q5_1, q5_k_m, q5_0,
    /// q4_1, q4_k_m, iq4_nl, q4_0, q3_k_m, q2_k). Also: f16, bf16, q5_k_s,
    /// q4_k_s, iq4_xs, q3_k_l, q3_k_s.
    #[arg(long, default_value = "default")]
    pub tiers: String,
    /// Evaluation text (plain UTF-8 prose). Default: the Lee news corpus
    /// that scripts/fetch-models.sh fetches (models/eval/lee-background.txt).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Window size for scoring; the second half of each window is scored.
    #[arg(long, default_value_t = 512)]
    pub ctx: u32,
    /// Windows scored per model (each scores ctx/2 − 1 tokens).
    #[arg(long, default_value_t = 4)]
    pub chunks: usize,
    /// Model name in file names and variants.json (default: SOURCE's name).
    #[arg(long)]
    pub name: Option<String>,
    /// TOML file adding or replacing device classes
    /// ([[class]] name, ram_budget, relative_bandwidth, kld_ceiling).
    #[arg(long)]
    pub devices: Option<PathBuf>,
    /// CPU threads. Default: all cores.
    #[arg(long, short = 't')]
    pub threads: Option<u32>,
}

pub fn variants(a: VariantsArgs) -> Result<()> {
    match a.command {
        VariantsCommand::Measure { file, threads } => {
            let cost = outpost_variants::cost::measure(&file, threads)?;
            println!("{}", serde_json::to_string(&cost)?);
            Ok(())
        }
        VariantsCommand::Build(b) => build(b),
    }
}

/// Runs `outpost variants measure FILE` in a child process.
fn measure_in_child(file: &Path, threads: Option<u32>) -> Result<Cost, VariantsError> {
    let mut exe =
        std::env::current_exe().map_err(|e| VariantsError::io(Path::new("outpost"), e))?;
    // Rebuilt while running (cargo replaced the file): Linux reports the
    // old inode as "PATH (deleted)"; the new binary is at PATH.
    if let Some(s) = exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        exe = PathBuf::from(s);
    }
    let mut cmd = Command::new(&exe);
    cmd.args(["variants", "measure"]).arg(file);
    if let Some(t) = threads {
        cmd.args(["-t", &t.to_string()]);
    }
    let out = cmd.output().map_err(|e| {
        VariantsError::Other(format!(
            "cannot start `{} variants measure {}`: {e}",
            exe.display(),
            file.display()
        ))
    })?;
    if !out.status.success() {
        return Err(VariantsError::Other(format!(
            "measuring {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| VariantsError::Other(format!("measuring {}: bad output: {e}", file.display())))
}

fn default_eval_text() -> Result<PathBuf> {
    let dir = models::models_dir()
        .context("no models/ folder found: run scripts/fetch-models.sh, or give --eval FILE")?;
    let p = dir.join("eval").join("lee-background.txt");
    if !p.is_file() {
        bail!(
            "the default evaluation text {} is missing: run scripts/fetch-models.sh, or give --eval FILE",
            p.display()
        );
    }
    Ok(p)
}

fn build(b: BuildArgs) -> Result<()> {
    let source = models::resolve(&b.source)?;
    let header = outpost_engine::gguf::GgufHeader::read(&source)?;
    let embedding = header
        .architecture()
        .and_then(|a| outpost_engine::EmbeddingInfo::of(&header, a))
        .is_some();
    let tiers = if embedding && b.tiers == "default" {
        outpost_variants::embedding::DEFAULT_TIERS
            .iter()
            .map(|t| t.to_string())
            .collect()
    } else {
        outpost_variants::tiers::parse(&b.tiers)?
    };
    let eval_text = match b.eval {
        Some(p) => p,
        None => default_eval_text()?,
    };
    let mut classes = outpost_variants::devices::builtin_classes();
    if let Some(path) = &b.devices {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --devices {}", path.display()))?;
        classes = outpost_variants::devices::apply_overrides(
            classes,
            &text,
            &path.display().to_string(),
        )?;
    }
    std::fs::create_dir_all(&b.out)
        .with_context(|| format!("creating --out {}", b.out.display()))?;
    let name = b.name.clone().or_else(|| {
        models::KNOWN
            .iter()
            .any(|(n, _)| *n == b.source)
            .then(|| b.source.clone())
    });
    let opts = BuildOptions {
        source,
        tiers,
        eval_text,
        out: b.out.clone(),
        name,
        n_ctx: b.ctx,
        chunks: b.chunks,
        threads: b.threads,
        classes,
    };
    let started = std::time::Instant::now();
    if embedding {
        return build_embedding(&opts, started);
    }
    let threads = b.threads;
    let measure = move |p: &Path| measure_in_child(p, threads);
    // The bar of the step running now; the next step finishes it.
    let current: Arc<Mutex<Option<ProgressBar>>> = Arc::default();
    let ticker: Arc<AtomicBool> = Arc::new(AtomicBool::new(false));
    let mut poller: Option<std::thread::JoinHandle<()>> = None;
    let stop_poller = |poller: &mut Option<std::thread::JoinHandle<()>>| {
        ticker.store(false, Ordering::SeqCst);
        if let Some(h) = poller.take() {
            let _ = h.join();
        }
    };
    let finish = |current: &Arc<Mutex<Option<ProgressBar>>>| {
        if let Some(bar) = current.lock().ok().and_then(|mut c| c.take()) {
            bar.finish();
        }
    };
    let mut on = |s: Step| {
        stop_poller(&mut poller);
        match s {
            Step::Scoring { chunk, of } => {
                let mut c = current.lock().unwrap_or_else(|e| e.into_inner());
                let bar = c.get_or_insert_with(|| {
                    progress::steps(of as u64, "scoring all tiers against the source", "chunks")
                });
                bar.set_position(chunk as u64);
                return;
            }
            Step::Fingerprinting { .. } => return,
            _ => finish(&current),
        }
        match s {
            Step::Quantizing { tier, index, of } => {
                // Counted from llama.cpp's per-tensor log lines.
                let bar =
                    progress::steps(0, &format!("[{index}/{of}] quantizing {tier}"), "tensors");
                ticker.store(true, Ordering::SeqCst);
                let (t, b) = (ticker.clone(), bar.clone());
                poller = Some(std::thread::spawn(move || {
                    while t.load(Ordering::SeqCst) {
                        let (done, total) = outpost_engine::quantize_progress();
                        if total > 0 {
                            b.set_length(total);
                            b.set_position(done);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }));
                *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
            }
            Step::Reused { what } => eprintln!("reusing {what} from an earlier run"),
            Step::Merged { tier, into } => {
                eprintln!("{tier} is within 3 % of {into} in size (over the tensors tiers store differently): merged into it")
            }
            Step::Measuring { tier, index, of } => {
                let bar = progress::spinner(&format!(
                    "[{index}/{of}] measuring {tier} (load, pp512, tg128, peak RSS)"
                ));
                *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
            }
            Step::Wrote { path } => eprintln!("wrote {}", path.display()),
            Step::Scoring { .. } | Step::Fingerprinting { .. } => {}
        }
    };
    let result = outpost_variants::build(&opts, &measure, &mut on);
    stop_poller(&mut poller);
    finish(&current);
    let file = result?;
    print_summary(&file);
    eprintln!(
        "done in {:.0} s: {} distinct tiers in {}",
        started.elapsed().as_secs_f64(),
        file.tiers.len(),
        b.out.display()
    );
    Ok(())
}

/// An embedding model's tiers, scored by cosine to the source's vectors.
fn build_embedding(opts: &BuildOptions, started: std::time::Instant) -> Result<()> {
    let of = opts.tiers.len();
    let bar = progress::steps(
        of as u64 * 2 + 1,
        "embedding tiers: quantize, embed, compare",
        "steps",
    );
    let mut done = 0;
    let mut on = |s: Step| {
        match s {
            Step::Quantizing { tier, index, of } => {
                bar.set_message(format!("[{index}/{of}] quantizing {tier}"))
            }
            Step::Scoring { chunk: 0, .. } => {
                bar.set_message("embedding the sentences with the source")
            }
            Step::Scoring { chunk, .. } => {
                bar.set_message(format!("[{chunk}/{of}] embedding and comparing"))
            }
            Step::Wrote { path } => {
                bar.suspend(|| eprintln!("wrote {}", path.display()));
                return;
            }
            _ => return,
        }
        done += 1;
        bar.set_position(done);
    };
    let file = outpost_variants::embedding::build(opts, &mut on)?;
    bar.finish_and_clear();
    println!(
        "{} ({}, {:.1} MiB): {} sentences, source {:.1} sentences/s",
        file.model,
        file.source.quantization,
        file.source.size as f64 / 1048576.0,
        file.eval.sentences,
        file.eval.source_embeddings_per_s
    );
    let mut t = crate::table::table(&[
        "tier",
        "MiB",
        "bpw",
        "cosine mean",
        "p01",
        "min",
        "sentences/s",
    ]);
    for tier in &file.tiers {
        t.add_row(vec![
            tier.name.clone(),
            format!("{:.1}", tier.size as f64 / 1048576.0),
            format!("{:.2}", tier.bpw),
            format!("{:.6}", tier.cosine_mean),
            format!("{:.6}", tier.cosine_p01),
            format!("{:.6}", tier.cosine_min),
            format!("{:.1}", tier.embeddings_per_s),
        ]);
    }
    crate::table::print(t);
    eprintln!(
        "done in {:.0} s: {} tiers in {}",
        started.elapsed().as_secs_f64(),
        file.tiers.len(),
        opts.out.display()
    );
    Ok(())
}

/// One line per tier, and the recommendations.
fn print_summary(f: &outpost_protocol::variants::VariantsFile) {
    println!(
        "{} ({}, {:.2} bpw{}): reference PPL {:.3} over {} tokens",
        f.model,
        f.source.quantization,
        f.source.bpw,
        if f.source.already_quantized {
            ", already quantized: tiers compare against it"
        } else {
            ""
        },
        f.eval.reference_ppl,
        f.eval.scored_tokens
    );
    let mut t = crate::table::table(&[
        "tier", "MiB", "bpw", "PPL", "KLD", "top %", "pp512", "tg128", "",
    ]);
    for tier in &f.tiers {
        t.add_row(vec![
            tier.name.clone(),
            format!("{:.1}", tier.size as f64 / 1048576.0),
            format!("{:.2}", tier.bpw),
            format!("{:.3}", tier.quality.ppl),
            format!("{:.4}", tier.quality.kld_mean),
            format!("{:.1}", tier.quality.same_top_pct),
            format!("{:.0}", tier.cost.pp512_tps),
            format!("{:.0}", tier.cost.tg128_tps),
            if tier.no_quality_gain {
                "no quality gain".into()
            } else {
                String::new()
            },
        ]);
    }
    crate::table::print(t);
    let mut t = crate::table::table(&["device class", "recommended"]);
    for r in &f.recommendations {
        t.add_row(vec![r.device_class.clone(), r.reason.clone()]);
    }
    crate::table::print(t);
}
