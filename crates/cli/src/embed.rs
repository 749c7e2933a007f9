//! `outpost embed MODEL [TEXT...]`: embeddings from the command line, one
//! JSON line per input (`{"index", "tokens", "embedding"}`), texts from the
//! arguments or one per line of `--file` / stdin.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use outpost_engine::{EmbedConfig, Embedder, LoadOptions, Model};

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// An embedding model: a GGUF path or a short name (minilm).
    pub model: String,
    /// Texts to embed; none: one text per line of --file or stdin.
    pub texts: Vec<String>,
    /// Read texts from this file, one per line (`-` for stdin).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Cut inputs longer than the model's context instead of failing.
    #[arg(long)]
    pub truncate: bool,
    /// Threads for the encoder (default: all cores).
    #[arg(long, short)]
    pub threads: Option<u32>,
}

/// Loads the embedding model at `path` and starts its worker.
pub fn start(path: &std::path::Path, threads: Option<u32>) -> Result<Embedder> {
    let model = Arc::new(Model::load(path, &LoadOptions::default())?);
    let mut cfg = EmbedConfig::default();
    if let Some(t) = threads {
        cfg.threads = t;
    }
    Ok(Embedder::start(model, cfg)?)
}

pub fn embed(args: EmbedArgs) -> Result<()> {
    let embedder = start(&crate::models::resolve(&args.model)?, args.threads)?;
    let texts: Vec<String> = if !args.texts.is_empty() {
        args.texts
    } else {
        let reader: Box<dyn BufRead> = match args.file.as_deref() {
            None => Box::new(std::io::stdin().lock()),
            Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
            Some(p) => Box::new(std::io::BufReader::new(
                std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
            )),
        };
        reader.lines().collect::<std::io::Result<_>>()?
    };
    if texts.is_empty() {
        bail!("nothing to embed: give texts as arguments, or one per line with --file or on stdin");
    }
    let mut inputs = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        inputs.push(
            embedder
                .tokenize(t, args.truncate)
                .with_context(|| format!("input {i}"))?,
        );
    }
    let counts: Vec<usize> = inputs.iter().map(Vec::len).collect();
    let vectors = embedder.embed(inputs)?;
    let mut out = std::io::stdout().lock();
    for (i, (v, n)) in vectors.iter().zip(counts).enumerate() {
        let line = serde_json::json!({ "index": i, "tokens": n, "embedding": v });
        writeln!(out, "{line}")?;
    }
    Ok(())
}
