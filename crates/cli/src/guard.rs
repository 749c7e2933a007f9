//! `outpost guard`: find and redact personal data in text on stdin.

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use outpost_guard::corpus::{evaluate, generate, mixed_text, table};
use outpost_guard::{redact, Action, Finding, Region, Restorer, Scanner, Vault};
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
    /// Precision, recall and F2 per entity type, and scan throughput.
    ///
    /// Without --corpus: on the generated labelled corpus (it shares the
    /// detectors' assumptions, so read it as a regression check), then the
    /// throughput on mixed text, first pass and warm. With --corpus: on your
    /// labelled JSONL instead, one {"text", "spans": [{"type", "start",
    /// "end"}], "region"?} per line (character offsets, Presidio's type
    /// names; "region" is the country whose national phone formats the line
    /// uses). `scripts/pii-corpora.py DIR` writes four such files from
    /// sources the guard's code did not make.
    ///
    /// Examples:
    ///   outpost guard bench
    ///   outpost guard bench --corpus eval/presidio-faker.jsonl --json
    #[command(verbatim_doc_comment)]
    Bench {
        /// Labelled samples per entity type (as many hard negatives again).
        #[arg(long, default_value_t = 500)]
        samples: usize,
        /// Megabytes of mixed text for the throughput run.
        #[arg(long, default_value_t = 50)]
        mb: usize,
        /// Score this labelled JSONL file instead (repeat for several).
        #[arg(long)]
        corpus: Vec<std::path::PathBuf>,
        /// Print the scores as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        regions: RegionArg,
    },
}

/// Which countries' national phone formats to read.
#[derive(Debug, Args)]
pub struct RegionArg {
    /// Regions whose national phone numbers are read, comma-separated CLDR
    /// codes (US,GB,DE). Numbers written with + or 00 are read in every
    /// region anyway. Default: the region of LC_ALL, LC_TELEPHONE or LANG,
    /// else US.
    #[arg(long = "region", value_name = "CODES")]
    pub codes: Option<String>,
}

impl RegionArg {
    /// The regions asked for, or the locale's.
    pub fn regions(&self) -> Result<Vec<Region>> {
        match &self.codes {
            Some(list) => {
                outpost_router::parse_regions(list).map_err(|e| anyhow::anyhow!("--region: {e}"))
            }
            None => Ok(vec![outpost_router::locale_default()]),
        }
    }
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// Report findings scoring at least this (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    #[command(flatten)]
    regions: RegionArg,
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
    #[command(flatten)]
    regions: RegionArg,
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

fn scanner(threshold: f32, regions: &RegionArg) -> Result<Scanner> {
    if !(0.0..=1.0).contains(&threshold) {
        bail!("--threshold {threshold} is out of range: give a score between 0 and 1");
    }
    let mut s = Scanner::with_regions(regions.regions()?);
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
            let scanner = scanner(s.threshold, &s.regions)?;
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
            let scanner = scanner(r.threshold, &r.regions)?;
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
        GuardCommand::Bench {
            samples,
            mb,
            corpus,
            json,
            regions,
        } => {
            let scanner = Scanner::with_regions(regions.regions()?);
            if corpus.is_empty() {
                bench(&scanner, samples, mb)?
            } else {
                crate::guard_bench::score_files(&scanner, &corpus, json)?
            }
        }
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

fn bench(scanner: &Scanner, samples: usize, mb: usize) -> Result<()> {
    let corpus = generate(samples.max(1), 7);
    println!(
        "labelled corpus (generated here): {} samples ({} per entity type + as many hard negatives)\n",
        corpus.len(),
        samples
    );
    print!("{}", table(&evaluate(scanner, &corpus)));
    let text = mixed_text(mb.max(1) * 1_000_000, 1);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let t = std::time::Instant::now();
        let n = scanner.scan(&text).len();
        runs.push((text.len() as f64 / 1e6 / t.elapsed().as_secs_f64(), n));
    }
    println!(
        "\nthroughput on one core, {mb} MB of mixed text ({} findings): {:.1} MB/s first pass \
         (the lazy DFA and each region's phone rules are built as they are met), {:.1} MB/s warm",
        runs[0].1, runs[0].0, runs[1].0
    );
    Ok(())
}
