//! `outpost guard bench --corpus FILE`: scores the guard on labelled JSONL
//! that it did not generate (precision, recall and F2 per type), so that
//! its figures can be checked against independent data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use outpost_guard::corpus::{evaluate, table, Sample};
use outpost_guard::{Entity, Scanner};
use serde_json::{json, Value};

/// One file's samples, and the labels of types the guard does not detect.
struct Loaded {
    samples: Vec<Sample>,
    foreign: BTreeMap<String, usize>,
}

/// Reads `{"text", "spans": [{"type", "start", "end"}], "region"?}` lines.
fn load(path: &Path) -> Result<Loaded> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("reading corpus {}", path.display()))?;
    let mut out = Loaded {
        samples: Vec::new(),
        foreign: BTreeMap::new(),
    };
    for (i, line) in raw.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let v: Value = serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        let Some(text) = v.get("text").and_then(Value::as_str) else {
            bail!("{}: no \"text\" string", at());
        };
        let chars = text.chars().count();
        let region = match v.get("region").and_then(Value::as_str) {
            Some(r) => Some(
                r.parse()
                    .map_err(|e| anyhow::anyhow!("{}: \"region\": {e}", at()))?,
            ),
            None => None,
        };
        let mut labels = Vec::new();
        for span in v
            .get("spans")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ty = span.get("type").and_then(Value::as_str).unwrap_or("");
            let (Some(s), Some(e)) = (
                span.get("start").and_then(Value::as_u64),
                span.get("end").and_then(Value::as_u64),
            ) else {
                bail!(
                    "{}: a span needs \"type\", \"start\" and \"end\" (character offsets)",
                    at()
                );
            };
            let (s, e) = (s as usize, e as usize);
            if s >= e || e > chars {
                bail!(
                    "{}: span {s}..{e} does not fit a text of {chars} characters",
                    at()
                );
            }
            match Entity::from_name(ty) {
                Some(entity) => labels.push((entity, s, e)),
                None => *out.foreign.entry(ty.to_string()).or_default() += 1,
            }
        }
        out.samples.push(Sample {
            text: text.to_string(),
            labels,
            region,
        });
    }
    if out.samples.is_empty() {
        bail!("{}: no labelled lines", path.display());
    }
    Ok(out)
}

/// Scores each file and prints a table (or JSON) per file.
pub fn score_files(scanner: &Scanner, files: &[PathBuf], as_json: bool) -> Result<()> {
    let mut all = serde_json::Map::new();
    for path in files {
        let loaded = load(path)?;
        let scores = evaluate(scanner, &loaded.samples);
        let seen: Vec<_> = scores
            .into_iter()
            .filter(|(_, s)| s.tp + s.fp + s.fn_ > 0)
            .collect();
        if as_json {
            let per: serde_json::Map<String, Value> = seen
                .iter()
                .map(|(e, s)| {
                    (
                        e.name().to_string(),
                        json!({"precision": s.precision(), "recall": s.recall(), "f2": s.f2(),
                               "tp": s.tp, "fp": s.fp, "fn": s.fn_}),
                    )
                })
                .collect();
            all.insert(
                path.display().to_string(),
                json!({"texts": loaded.samples.len(), "types": per, "not_detected_types": loaded.foreign}),
            );
            continue;
        }
        println!("{} ({} texts)\n", path.display(), loaded.samples.len());
        print!("{}", table(&seen));
        if !loaded.foreign.is_empty() {
            let list: Vec<String> = loaded
                .foreign
                .iter()
                .map(|(t, n)| format!("{t} ({n})"))
                .collect();
            println!(
                "\nlabels of types the guard does not detect, left out: {}",
                list.join(", ")
            );
        }
        println!();
    }
    if as_json {
        println!("{}", Value::Object(all));
    }
    Ok(())
}
