//! `outpost index create|add|search|list|rm`: the on-device vector index
//! (`outpost_index`), one SQLite file per index under `--dir` (default
//! `$OUTPOST_INDEX_DIR`, else `~/.local/share/outpost/indexes`). Documents
//! are chunked by the embedding model's tokens with an overlap, optionally
//! redacted by the guard first, embedded, and stored atomically.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use outpost_engine::Embedder;
use outpost_index::{Hit, Index, NewChunk};

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Where indexes live (NAME.sqlite each).
    #[arg(long, global = true, env = "OUTPOST_INDEX_DIR")]
    pub dir: Option<PathBuf>,
    /// Threads for the embedding model (default: all cores).
    #[arg(long, short, global = true)]
    pub threads: Option<u32>,
    #[command(subcommand)]
    pub command: IndexCommand,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Make an empty index for one embedding model.
    ///
    /// Example: outpost index create notes --model minilm
    #[command(verbatim_doc_comment)]
    Create {
        name: String,
        /// The embedding model (a GGUF path or a short name); every add and
        /// search uses it.
        #[arg(long)]
        model: String,
        /// Tokens per chunk (at most the model's context less [CLS] and [SEP]).
        #[arg(long, default_value_t = 128)]
        chunk_tokens: usize,
        /// Tokens shared by consecutive chunks.
        #[arg(long, default_value_t = 32)]
        overlap: usize,
    },
    /// Add files (UTF-8 text) as documents; a file added again replaces
    /// its document. Each file is stored in one transaction.
    ///
    /// Examples:
    ///   outpost index add notes notes/*.txt
    ///   outpost index add notes mail.txt --id mail-2026-12 --redact --meta '{"from": "bank"}'
    #[command(verbatim_doc_comment)]
    Add {
        name: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Document id (one file only; default: the file name).
        #[arg(long)]
        id: Option<String>,
        /// Replace personal data (emails, phones, cards, ...) with labels
        /// before anything is stored; offsets then point into the redacted text.
        #[arg(long)]
        redact: bool,
        /// JSON object stored with the document and returned with its hits.
        #[arg(long)]
        meta: Option<String>,
    },
    /// The chunks nearest to a query, best first.
    ///
    /// Example: outpost index search notes "when is the dentist?" -k 3
    #[command(verbatim_doc_comment)]
    Search {
        name: String,
        query: String,
        #[arg(short, default_value_t = 5)]
        k: usize,
        /// One JSON line per hit.
        #[arg(long)]
        json: bool,
    },
    /// The index's model and documents.
    List { name: String },
    /// Remove a document and all its chunks.
    Rm { name: String, id: String },
}

/// `DIR/NAME.sqlite`, or NAME itself when it is a path to a `.sqlite` file.
pub fn index_path(dir: Option<&Path>, name: &str) -> Result<PathBuf> {
    if name.ends_with(".sqlite") || name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("index name {name:?}: use letters, digits, '-', '_' and '.' (or give a path ending in .sqlite)");
    }
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/share/outpost/indexes"))
            .context("no --dir, OUTPOST_INDEX_DIR or HOME: say where indexes live")?,
    };
    Ok(dir.join(format!("{name}.sqlite")))
}

/// The embedding model an index was made with, started.
pub struct Embedding {
    pub embedder: Embedder,
    pub spec: String,
    pub digest: String,
}

pub fn start_embedder(spec: &str, threads: Option<u32>) -> Result<Embedding> {
    let path = crate::models::resolve(spec)?;
    let digest = outpost_store::hash_file(&path)
        .with_context(|| format!("hashing {}", path.display()))?
        .0
        .to_string();
    Ok(Embedding {
        embedder: crate::embed::start(&path, threads)?,
        spec: spec.to_string(),
        digest,
    })
}

/// Opens an index and starts the model it was made with.
pub fn open_with_model(path: &Path, threads: Option<u32>) -> Result<(Index, Embedding)> {
    let index = Index::open(path)?;
    let emb = start_embedder(&index.info().model, threads)?;
    index.check_model(&emb.spec, &emb.digest)?;
    Ok((index, emb))
}

/// Embeds `query` and searches.
pub fn search(index: &Index, emb: &Embedding, query: &str, k: usize) -> Result<Vec<Hit>> {
    Ok(index.search(&emb.embedder.embed_text(query)?, k)?)
}

pub fn index(a: IndexArgs) -> Result<()> {
    let dir = a.dir.as_deref();
    match a.command {
        IndexCommand::Create {
            name,
            model,
            chunk_tokens,
            overlap,
        } => {
            let path = index_path(dir, &name)?;
            let emb = start_embedder(&model, a.threads)?;
            let max = emb.embedder.max_tokens().saturating_sub(2);
            if chunk_tokens == 0 || chunk_tokens > max {
                bail!("--chunk-tokens {chunk_tokens}: give 1 to {max} (the model's context less [CLS] and [SEP])");
            }
            if overlap >= chunk_tokens {
                bail!("--overlap {overlap} must be below --chunk-tokens {chunk_tokens}");
            }
            let ix = Index::create(
                &path,
                &model,
                &emb.digest,
                emb.embedder.dimensions(),
                chunk_tokens,
                overlap,
            )?;
            println!(
                "created {} ({} dimensions from {}, chunks of {} tokens, overlap {})",
                ix.path().display(),
                ix.info().dims,
                model,
                chunk_tokens,
                overlap
            );
            Ok(())
        }
        IndexCommand::Add {
            name,
            files,
            id,
            redact,
            meta,
        } => {
            if id.is_some() && files.len() > 1 {
                bail!("--id names one document: give one file with it, or none to use file names");
            }
            let metadata: serde_json::Value = match meta {
                Some(m) => {
                    serde_json::from_str(&m).with_context(|| format!("--meta {m:?} is not JSON"))?
                }
                None => serde_json::Value::Null,
            };
            let (mut ix, emb) = open_with_model(&index_path(dir, &name)?, a.threads)?;
            // National phone formats of the user's locale, as `guard scan`.
            let scanner =
                outpost_guard::Scanner::with_regions(vec![outpost_router::locale_default()]);
            for file in &files {
                let raw =
                    std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                let mut text = String::from_utf8(raw).map_err(|e| {
                    anyhow::anyhow!(
                        "{} is not UTF-8 text (first bad byte at {})",
                        file.display(),
                        e.utf8_error().valid_up_to()
                    )
                })?;
                if redact {
                    let mut vault = outpost_guard::Vault::new();
                    text = outpost_guard::redact(
                        &scanner,
                        &text,
                        &outpost_guard::Action::Redact,
                        &mut vault,
                    )?
                    .into_inner();
                }
                let doc_id = id.clone().unwrap_or_else(|| {
                    file.file_name().map_or_else(
                        || file.display().to_string(),
                        |f| f.to_string_lossy().into_owned(),
                    )
                });
                let info = ix.info().clone();
                let chunks = outpost_index::chunk(&text, info.chunk_tokens, info.overlap, &|w| {
                    emb.embedder.count_tokens(w)
                });
                let bar = crate::progress::steps(
                    chunks.len() as u64,
                    &format!("embedding {}", file.display()),
                    "chunks",
                );
                let mut stored = Vec::with_capacity(chunks.len());
                for group in chunks.chunks(32) {
                    let tokens = group
                        .iter()
                        .map(|c| emb.embedder.tokenize(&c.text, true))
                        .collect::<Result<Vec<_>, _>>()?;
                    for (c, v) in group.iter().zip(emb.embedder.embed(tokens)?) {
                        stored.push(NewChunk {
                            start: c.start,
                            end: c.end,
                            text: c.text.clone(),
                            vector: v,
                        });
                    }
                    bar.inc(group.len() as u64);
                }
                bar.finish_and_clear();
                ix.add(
                    &doc_id,
                    &file.display().to_string(),
                    text.len(),
                    &metadata,
                    &stored,
                )?;
                println!(
                    "{doc_id}: {} chunks from {} ({} bytes{})",
                    stored.len(),
                    file.display(),
                    text.len(),
                    if redact { ", redacted" } else { "" }
                );
            }
            Ok(())
        }
        IndexCommand::Search {
            name,
            query,
            k,
            json,
        } => {
            let (ix, emb) = open_with_model(&index_path(dir, &name)?, a.threads)?;
            for (i, h) in search(&ix, &emb, &query, k)?.iter().enumerate() {
                if json {
                    println!("{}", serde_json::to_string(h)?);
                } else {
                    println!(
                        "[{}] {:.3}  {} {}..{}\n    {}",
                        i + 1,
                        h.score,
                        h.doc,
                        h.start,
                        h.end,
                        h.text.replace('\n', " ")
                    );
                }
            }
            Ok(())
        }
        IndexCommand::List { name } => {
            let ix = Index::open(&index_path(dir, &name)?)?;
            let i = ix.info();
            println!(
                "{}: model {} ({} dimensions), {} documents, {} chunks of {} tokens (overlap {})",
                ix.path().display(),
                i.model,
                i.dims,
                i.docs,
                i.chunks,
                i.chunk_tokens,
                i.overlap
            );
            let mut t = crate::table::table(&["document", "chunks", "bytes", "source"]);
            for d in ix.docs()? {
                t.add_row(vec![
                    d.id,
                    d.chunks.to_string(),
                    d.bytes.to_string(),
                    d.source,
                ]);
            }
            crate::table::print(t);
            Ok(())
        }
        IndexCommand::Rm { name, id } => {
            let mut ix = Index::open(&index_path(dir, &name)?)?;
            ix.remove(&id)?;
            println!("removed {id}");
            Ok(())
        }
    }
}
