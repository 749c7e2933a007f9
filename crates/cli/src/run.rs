//! `outpost run` and `outpost info`.

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use outpost_engine::{
    bench_parallel, bench_parallel_bound, build_info, BenchParams, BenchResult, CancelToken,
    ChatTemplate, GenerateRequest, LoadOptions, Message, Model, Prompt, SamplingParams,
};

use crate::models;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Model path or short name (smollm2-135m, gemma3-270m).
    pub model: String,
    /// The prompt (a user message, or with --raw the text to continue).
    pub prompt: String,
    /// Plain completion: no chat template.
    #[arg(long)]
    pub raw: bool,
    /// A system message before the prompt (chat mode only).
    #[arg(long, conflicts_with = "raw")]
    pub system: Option<String>,
    /// Chat template to use instead of the model's own: a built-in name
    /// (chatml, gemma, llama3) or a Jinja file.
    #[arg(long, value_name = "NAME|FILE", conflicts_with = "raw")]
    pub chat_template: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// With --json: the logprob of each generated token and its N most likely alternatives.
    #[arg(long, value_name = "N", requires = "json")]
    pub top_logprobs: Option<usize>,
    /// Print a JSON summary (text, tokens, finish reason, timings) instead of streaming.
    #[arg(long)]
    pub json: bool,
    /// Don't print statistics to stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Sampling and context flags shared by `run` and `chat`.
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 = greedy (always the most likely token).
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep only the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: i32,
    /// Keep the smallest set of tokens whose probability reaches P (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than P times the best one (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalise tokens seen in the last --repeat-last-n tokens (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// How far back the repetition penalty looks (-1 = whole context).
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: i32,
    /// Random seed: the same seed gives the same text. Default: random.
    #[arg(long)]
    pub seed: Option<u32>,
    /// Stop after this many tokens. Default: until the model stops or the context is full.
    #[arg(long, short = 'n')]
    pub max_tokens: Option<u32>,
    /// Stop when the output contains this text (repeatable; the text is not printed).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Context size in tokens. Default: the model's training context, at most 8192.
    #[arg(long, short = 'c')]
    pub ctx_size: Option<u32>,
    /// CPU threads. Default: all cores.
    #[arg(long, short = 't')]
    pub threads: Option<u32>,
}

impl SamplingArgs {
    /// Fills the sampling, stop, length and context fields of `req`.
    pub fn apply(&self, req: &mut GenerateRequest) {
        req.sampling = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed: self.seed,
        };
        req.max_tokens = self.max_tokens;
        req.stop = self.stop.iter().map(|s| unescape(s)).collect();
        req.n_ctx = self.ctx_size;
        req.threads = self.threads;
    }
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Model path or short name.
    #[arg(required_unless_present = "build")]
    pub model: Option<String>,
    /// Print the llama.cpp build (commit, CPU features) instead.
    #[arg(long, conflicts_with = "model")]
    pub build: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: RunArgs) -> Result<()> {
    let path = models::resolve(&a.model)?;
    let model = Model::load(&path, &LoadOptions::default())?;
    let prompt = if a.raw {
        Prompt::Text(a.prompt.clone())
    } else {
        let template = load_template(a.chat_template.as_deref())?;
        let mut messages = Vec::new();
        if let Some(s) = &a.system {
            messages.push(Message::system(s.clone()));
        }
        messages.push(Message::user(a.prompt.clone()));
        if template.is_none() && model.chat_template().is_none() {
            // Say it before anything else happens: never guess a template.
            model.render_chat(&messages, None, true)?;
        }
        Prompt::Chat {
            messages,
            template,
            tools: Vec::new(),
        }
    };
    let mut req = GenerateRequest::new(prompt);
    a.sampling.apply(&mut req);
    req.top_logprobs = a.top_logprobs;

    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        // A second Ctrl-C while stopping falls through to the default exit.
        let _ = ctrlc::set_handler(move || {
            if cancel.is_cancelled() {
                std::process::exit(130);
            }
            cancel.cancel();
        });
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut logprobs = Vec::new();
    let done = model.generate(&req, &cancel, |piece| {
        if let Some(lp) = piece.logprob {
            logprobs.push(serde_json::json!({
                "token": piece.token,
                "logprob": lp,
                "top": piece.top.iter().map(|t| serde_json::json!({"token": t.token, "logprob": t.logprob})).collect::<Vec<_>>(),
            }));
        }
        if !a.json && !piece.text.is_empty() {
            let _ = out.write_all(piece.text.as_bytes());
            let _ = out.flush();
        }
    })?;
    if a.json {
        let v = serde_json::json!({
            "model": path.display().to_string(),
            "text": done.text,
            "tokens": done.tokens,
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.tokens.len(),
            "finish_reason": format!("{:?}", done.finish_reason).to_lowercase(),
            "seed": done.seed,
            "n_ctx": done.n_ctx,
            "prompt_ms": done.prompt_ms,
            "generate_ms": done.generate_ms,
        });
        let mut v = v;
        if a.top_logprobs.is_some() {
            v["logprobs"] = serde_json::Value::Array(logprobs);
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(out)?;
    }
    drop(out);
    if !a.quiet {
        let tps = |n: usize, ms: f64| if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 };
        eprintln!(
            "[{} prompt tokens at {:.0} tok/s, {} generated at {:.1} tok/s, finish: {:?}, seed {}]",
            done.prompt_tokens,
            tps(done.prompt_tokens, done.prompt_ms),
            done.tokens.len(),
            tps(done.tokens.len(), done.generate_ms),
            done.finish_reason,
            done.seed,
        );
    }
    Ok(())
}

/// The --chat-template argument, loaded.
pub fn load_template(spec: Option<&str>) -> Result<Option<Arc<ChatTemplate>>> {
    Ok(spec
        .map(ChatTemplate::from_name_or_file)
        .transpose()?
        .map(Arc::new))
}

/// `\n`, `\t` and `\\` in --stop values, so shells can pass newlines.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

pub fn info(a: InfoArgs) -> Result<()> {
    if a.build {
        let b = build_info();
        if a.json {
            let v = serde_json::json!({
                "llama_cpp_sys_2": b.llama_cpp_sys_version,
                "llama_cpp_commit": b.llama_cpp_commit,
                "cpu_features": b.cpu_features,
                "gpu_offload": b.gpu_offload,
                "system_info": b.system_info,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!(
                "llama.cpp         commit {} (via llama-cpp-sys-2 {})",
                b.llama_cpp_commit, b.llama_cpp_sys_version
            );
            println!("CPU features      {}", b.cpu_features.join(" "));
            println!(
                "GPU offload       {}",
                if b.gpu_offload {
                    "yes"
                } else {
                    "no (CPU build)"
                }
            );
            println!("system info       {}", b.system_info);
        }
        return Ok(());
    }
    let Some(spec) = a.model else {
        bail!("give a MODEL, or --build");
    };
    let path = models::resolve(&spec)?;
    let model = Model::load(&path, &LoadOptions::default())
        .with_context(|| format!("outpost info {spec}"))?;
    let i = model.info();
    if a.json {
        let v = serde_json::json!({
            "path": i.path.display().to_string(),
            "file_size": i.file_size,
            "gguf_version": i.gguf_version,
            "name": i.name,
            "architecture": i.architecture,
            "n_params": i.n_params,
            "n_layer": i.n_layer,
            "n_embd": i.n_embd,
            "n_ctx_train": i.n_ctx_train,
            "n_vocab": i.n_vocab,
            "sliding_window": i.sliding_window,
            "tensor_types": i.type_mix.iter().map(|(t, n, b)| serde_json::json!({"type": t, "tensors": n, "bytes": b})).collect::<Vec<_>>(),
            "bos": i.bos.as_ref().map(|t| serde_json::json!({"id": t.id, "text": t.text})),
            "eos": i.eos.as_ref().map(|t| serde_json::json!({"id": t.id, "text": t.text})),
            "add_bos": i.add_bos,
            "add_eos": i.add_eos,
            "chat_template": i.chat_template,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{i}");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model path or short name.
    pub model: String,
    /// Prompt tokens per pp run (0 skips pp).
    #[arg(long, short = 'p', default_value_t = 512)]
    pub n_prompt: u32,
    /// Generated tokens per tg run (0 skips tg).
    #[arg(long, short = 'g', default_value_t = 128)]
    pub n_gen: u32,
    /// Timed repetitions of each test.
    #[arg(long, short = 'r', default_value_t = 5)]
    pub reps: u32,
    /// Also measure aggregate decode speed with this many concurrent
    /// sequences (comma separated; 0 skips).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub parallel: Vec<u32>,
    /// Tokens each concurrent sequence generates.
    #[arg(long, default_value_t = 128)]
    pub parallel_tokens: u32,
    /// Most tokens a greedy sequence drafts per decode step by prompt
    /// lookup in the --parallel runs, 0 to 8 (0: no drafting, one token per
    /// step). As in `outpost serve`, guesses are decoded only while they
    /// pay on this model and machine.
    #[arg(long, default_value_t = outpost_engine::MAX_DRAFT)]
    pub draft_max: usize,
    /// Decode guesses whether or not they pay (to measure what they cost).
    #[arg(long)]
    pub draft_always: bool,
    /// Also measure, for each --parallel count, the most any scheduler could
    /// reach on that work with this llama.cpp build, one ceiling per mode:
    /// the prompts plus one row with logits per generated token, in steps
    /// of one row per sequence (no drafting) or of the fastest width
    /// drafting may use with every guess confirmed (ideal drafting), with
    /// no sampling or other overhead (takes about 3x as long again).
    #[arg(long)]
    pub bound: bool,
    /// CPU threads. Default: all cores.
    #[arg(long, short = 't')]
    pub threads: Option<u32>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `--draft-max` of `outpost bench` and `outpost serve`, checked before
/// any model loads.
pub fn check_draft_max(n: usize) -> Result<()> {
    if n > outpost_engine::MAX_DRAFT {
        bail!(
            "--draft-max {n} is more than {max}: give 0 (no drafting) to {max}",
            max = outpost_engine::MAX_DRAFT
        );
    }
    Ok(())
}

pub fn bench(a: BenchArgs) -> Result<()> {
    check_draft_max(a.draft_max)?;
    let path = models::resolve(&a.model)?;
    let model = Arc::new(Model::load(&path, &LoadOptions::default())?);
    // One step for pp/tg, one per sequence count (two with --bound).
    let counts = a.parallel.iter().filter(|&&n| n > 0).count() as u64;
    let pp_tg = a.n_prompt > 0 || a.n_gen > 0;
    let bar = crate::progress::steps(
        u64::from(pp_tg) + counts * (1 + u64::from(a.bound)),
        "outpost bench",
        "tests",
    );
    let step = |what: String| {
        if bar.is_hidden() {
            eprintln!("{what}");
        } else {
            bar.set_message(what);
        }
    };
    let r = if pp_tg {
        step(format!(
            "pp{} / tg{}, {} repetitions",
            a.n_prompt, a.n_gen, a.reps
        ));
        let r = model.bench(&BenchParams {
            n_prompt: a.n_prompt,
            n_gen: a.n_gen,
            reps: a.reps,
            threads: a.threads,
        })?;
        bar.inc(1);
        r
    } else {
        BenchResult {
            threads: a.threads.unwrap_or_else(outpost_engine::default_threads),
            stats: Vec::new(),
        }
    };
    let mut parallel = Vec::new();
    let mut bounds = Vec::new();
    let counts: Vec<u32> = a.parallel.iter().copied().filter(|&n| n > 0).collect();
    for &n in &counts {
        step(format!("{n} sequences × {} tokens", a.parallel_tokens));
        parallel.push(bench_parallel(
            &model,
            n,
            a.parallel_tokens,
            a.threads,
            a.draft_max,
            a.draft_always,
        )?);
        bar.inc(1);
    }
    // The bounds after every scheduler run: a bound decodes on this thread,
    // whose OpenMP team then lives on beside the next scheduler's and
    // slowed it (SmolLM2 at 4 sequences on 2 cores: 117-120 tok/s after a
    // bound, 158-162 without one before it).
    if a.bound {
        for &n in &counts {
            step(format!("the bound at {n} sequences"));
            bounds.push(bench_parallel_bound(
                &model,
                n,
                a.parallel_tokens,
                a.threads,
            )?);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let info = model.info();
    if a.json {
        let par: Vec<_> = parallel
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut v = serde_json::json!({
                    "sequences": p.sequences, "generated": p.generated,
                    "seconds": p.seconds, "aggregate_ts": p.aggregate_tps(),
                    "draft_max": a.draft_max, "draft_always": a.draft_always,
                    "drafted": p.drafted, "draft_accepted": p.draft_accepted,
                    "step_fixed_us": p.step_fixed_us, "step_row_us": p.step_row_us,
                });
                if let Some(b) = bounds.get(i) {
                    v["bound"] = serde_json::json!({
                        "no_drafting_ts": b.no_drafting_tps(),
                        "ideal_drafting_ts": b.ideal_drafting_tps(),
                        "prefill_seconds": b.prefill_seconds,
                        "rows_per_s": b.rows_per_s.iter().map(|(w, r)| {
                            serde_json::json!({"rows_per_sequence": w, "rows_per_s": r})
                        }).collect::<Vec<_>>(),
                    });
                }
                v
            })
            .collect();
        let rows: Vec<_> = r
            .stats
            .iter()
            .map(|s| {
                serde_json::json!({
                    "test": s.test, "n_tokens": s.n_tokens, "avg_ts": s.mean(),
                    "stddev_ts": s.stddev(), "samples_ts": s.samples,
                })
            })
            .collect();
        let v = serde_json::json!({
            "model": path.display().to_string(),
            "architecture": info.architecture,
            "file_size": info.file_size,
            "n_params": info.n_params,
            "threads": r.threads,
            "results": rows,
            "parallel": par,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut t = crate::table::markdown(&["model", "size", "params", "threads", "test", "t/s"]);
    for s in &r.stats {
        t.add_row(vec![
            info.architecture.clone(),
            format!("{:.2} MiB", info.file_size as f64 / 1048576.0),
            format!("{:.2} M", info.n_params as f64 / 1e6),
            r.threads.to_string(),
            s.test.to_string(),
            format!("{:.2} ± {:.2}", s.mean(), s.stddev()),
        ]);
    }
    if !r.stats.is_empty() {
        crate::table::print(t);
        println!();
    }
    if parallel.is_empty() {
        return Ok(());
    }
    let mut header = vec![
        "concurrent sequences",
        "tokens each",
        "aggregate decode t/s",
        "guesses decoded (confirmed)",
    ];
    if !bounds.is_empty() {
        header.extend([
            "bound t/s: no drafting, ideal drafting",
            "of the bound for its mode",
            "rows/s (rows per sequence)",
        ]);
    }
    let mut t = crate::table::markdown(&header);
    for (i, p) in parallel.iter().enumerate() {
        let mut row = vec![
            p.sequences.to_string(),
            (p.generated / u64::from(p.sequences)).to_string(),
            format!("{:.1}", p.aggregate_tps()),
            format!("{} ({})", p.drafted, p.draft_accepted),
        ];
        if let Some(b) = bounds.get(i) {
            let widths = b
                .rows_per_s
                .iter()
                .map(|(w, r)| format!("{r:.0} ({w})"))
                .collect::<Vec<_>>()
                .join(", ");
            // A run that may draft is held to the drafting ceiling.
            let ceiling = if a.draft_max == 0 {
                b.no_drafting_tps()
            } else {
                b.ideal_drafting_tps()
            };
            row.extend([
                format!("{:.1}, {:.1}", b.no_drafting_tps(), b.ideal_drafting_tps()),
                format!("{:.0} %", 100.0 * p.aggregate_tps() / ceiling),
                widths,
            ]);
        }
        t.add_row(row);
    }
    crate::table::print(t);
    if let Some(p) = parallel
        .iter()
        .find(|p| p.step_row_us > 0 || p.step_fixed_us > 0)
    {
        println!(
            "\nstep cost probed by the scheduler at start: {:.2} ms + {:.2} ms per row (drafting weighs guesses by it until steps are timed; prompts join a step in groups sized by it)",
            p.step_fixed_us as f64 / 1e3,
            p.step_row_us as f64 / 1e3
        );
    }
    if !bounds.is_empty() {
        println!("\nbound: the prompts in one batch plus one row with logits per generated token, at llama.cpp's measured rate for steps of one row per sequence (no drafting) or for the fastest step width drafting may use, up to 8 rows a step, with every guess confirmed (ideal drafting); no scheduler beats the bound of its mode on this build and machine.");
    }
    Ok(())
}
