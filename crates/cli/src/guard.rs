//! `outpost guard`: find and redact personal data in text on stdin.

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use outpost_guard::corpus::{evaluate, generate, mixed_text, table};
use outpost_guard::{redact, Action, Finding, Restorer, Scanner, Vault};
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct GuardArgs {
    #[command(subcommand)]
    command: GuardCommand,
}

#[derive(Debug, Subcommand)]
enum GuardCommand {
    /// Print the personal data found in stdin as JSON, one line per input.
    ///
    /// Input is plain text (one input), or JSON lines with a "text" field
    /// (one input per line). Offsets are Unicode characters.
    ///
    /// Examples:
    ///   echo "mail jane@example.com" | outpost guard scan
    ///   outpost guard scan < messages.jsonl
    #[command(verbatim_doc_comment)]
    Scan(ScanArgs),
    /// Print stdin with its personal data replaced.
    ///
    /// Actions: redact (<EMAIL_ADDRESS>), mask (****), hash (keyed
    /// HMAC, needs --key or OUTPOST_GUARD_KEY), placeholder (<EMAIL_ADDRESS_1>,
    /// reversible with `outpost guard restore --vault FILE`), block (exit 3
    /// if anything is found).
    ///
    /// Examples:
    ///   echo "card 4111 1111 1111 1111" | outpost guard redact --action mask
    ///   outpost guard redact --action placeholder --vault v.json < prompt.txt
    #[command(verbatim_doc_comment)]
    Redact(RedactArgs),
    /// Put the originals back into text that carries placeholders (stdin,
    /// streamed: placeholders split across reads are handled).
    Restore {
        /// The vault file written by `redact --action placeholder --vault`.
        #[arg(long)]
        vault: std::path::PathBuf,
    },
    /// Precision, recall and F2 per entity type on the generated labelled
    /// corpus, and scan throughput on mixed text.
    Bench {
        /// Labelled samples per entity type (as many hard negatives again).
        #[arg(long, default_value_t = 500)]
        samples: usize,
        /// Megabytes of mixed text for the throughput run.
        #[arg(long, default_value_t = 50)]
        mb: usize,
    },
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// Report findings scoring at least this (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
}

#[derive(Debug, Args)]
struct RedactArgs {
    /// redact, mask, hash, placeholder or block.
    #[arg(long, default_value = "redact")]
    action: String,
    /// Key for --action hash.
    #[arg(long, env = "OUTPOST_GUARD_KEY", hide_env_values = true)]
    key: Option<String>,
    /// With --action placeholder: write placeholder → original here (JSON).
    #[arg(long)]
    vault: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
}

/// The inputs on stdin: JSON lines with "text", or one plain text.
fn inputs(raw: &str) -> Vec<(Option<Value>, String)> {
    let lines: Vec<&str> = raw.lines().filter(|l| !l.trim().is_empty()).collect();
    let parsed: Option<Vec<(Option<Value>, String)>> = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            let t = v.get("text")?.as_str()?.to_string();
            Some((Some(v), t))
        })
        .collect();
    match parsed {
        Some(p) if !p.is_empty() => p,
        _ => vec![(None, raw.to_string())],
    }
}

fn scanner(threshold: f32) -> Result<Scanner> {
    if !(0.0..=1.0).contains(&threshold) {
        bail!("--threshold {threshold} is out of range: give a score between 0 and 1");
    }
    let mut s = Scanner::new();
    s.threshold = threshold;
    Ok(s)
}

fn finding_json(f: &Finding) -> Value {
    let score = (f64::from(f.score) * 1000.0).round() / 1000.0;
    json!({"type": f.entity.name(), "start": f.start, "end": f.end, "score": score, "value": f.value})
}

pub fn guard(a: GuardArgs) -> Result<()> {
    match a.command {
        GuardCommand::Scan(s) => {
            let scanner = scanner(s.threshold)?;
            let mut raw = String::new();
            std::io::stdin()
                .read_to_string(&mut raw)
                .context("reading stdin (UTF-8 text expected)")?;
            let mut out = std::io::stdout().lock();
            for (_, text) in inputs(&raw) {
                let found: Vec<Value> = scanner.scan(&text).iter().map(finding_json).collect();
                writeln!(out, "{}", json!({ "findings": found }))?;
            }
        }
        GuardCommand::Redact(r) => {
            let action = Action::parse(&r.action, r.key.as_deref().map(str::as_bytes))
                .with_context(|| {
                    if r.action == "hash" {
                        "--action hash needs a key: give --key or set OUTPOST_GUARD_KEY".to_string()
                    } else {
                        format!(
                            "unknown --action {:?}: use redact, mask, hash, placeholder or block",
                            r.action
                        )
                    }
                })?;
            if r.vault.is_some() && action != Action::Placeholder {
                bail!("--vault only goes with --action placeholder");
            }
            let scanner = scanner(r.threshold)?;
            let mut raw = String::new();
            std::io::stdin()
                .read_to_string(&mut raw)
                .context("reading stdin (UTF-8 text expected)")?;
            let mut vault = Vault::new();
            let mut out = String::new();
            for (obj, text) in inputs(&raw) {
                let safe = match redact(&scanner, &text, &action, &mut vault) {
                    Ok(s) => s.into_inner(),
                    Err(e) => {
                        eprintln!("error: {e}");
                        std::process::exit(3);
                    }
                };
                match obj {
                    Some(mut v) => {
                        v["text"] = Value::String(safe);
                        out.push_str(&v.to_string());
                        out.push('\n');
                    }
                    None => out.push_str(&safe),
                }
            }
            if let Some(path) = &r.vault {
                let map: serde_json::Map<String, Value> = vault
                    .entries()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect();
                let tmp = path.with_extension("partial");
                std::fs::write(&tmp, serde_json::to_string_pretty(&map)?)
                    .with_context(|| format!("writing {}", tmp.display()))?;
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            std::io::stdout().write_all(out.as_bytes())?;
        }
        GuardCommand::Restore { vault } => {
            let raw = std::fs::read_to_string(&vault)
                .with_context(|| format!("reading vault {}", vault.display()))?;
            let map: serde_json::Map<String, Value> =
                serde_json::from_str(&raw).with_context(|| {
                    format!(
                        "{} is not a vault written by `outpost guard redact --vault`",
                        vault.display()
                    )
                })?;
            let restored = restore_stream(&map)?;
            std::io::stdout().write_all(restored.as_bytes())?;
        }
        GuardCommand::Bench { samples, mb } => bench(samples, mb)?,
    }
    Ok(())
}

/// Restores stdin, read in pieces, through the vault saved by `redact`.
fn restore_stream(map: &serde_json::Map<String, Value>) -> Result<String> {
    let vault = Vault::from_entries(
        map.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))),
    );
    let mut r = Restorer::new(&vault);
    let mut out = String::new();
    let mut buf = [0u8; 8192];
    let mut stdin = std::io::stdin().lock();
    loop {
        let n = stdin.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.push_str(&r.push(&buf[..n]));
    }
    Ok(out + &r.finish())
}

fn bench(samples: usize, mb: usize) -> Result<()> {
    let scanner = Scanner::new();
    let corpus = generate(samples.max(1), 7);
    println!(
        "labelled corpus: {} samples ({} per entity type + as many hard negatives)\n",
        corpus.len(),
        samples
    );
    print!("{}", table(&evaluate(&scanner, &corpus)));
    let text = mixed_text(mb.max(1) * 1_000_000, 1);
    let t = std::time::Instant::now();
    let n = scanner.scan(&text).len();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "\nthroughput: {:.1} MB/s on one core ({} MB of mixed text, {n} findings)",
        text.len() as f64 / 1e6 / secs,
        mb
    );
    Ok(())
}
