//! `report.md`: what `variants.json` holds, for people — the source, how
//! quality was measured, one table row per tier, the merged tiers, the
//! recommendation per device class with its reason, the chart and the host.
//! Also [`write_atomic`], how every output file of the pipeline is written.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use outpost_protocol::variants::{Tier, VariantsFile};

/// File name of the chart, next to `report.md`.
pub const CHART_FILE: &str = "quality-vs-size.svg";

/// A file could not be written into place.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path} ({during}): {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub during: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` so that a reader (or a killed run) sees either
/// the old file or the complete new one: a temp file in the same folder,
/// flushed to disk, renamed over `path`, then the folder synced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let fail = |during: &'static str| {
        move |source| WriteError {
            path: path.to_path_buf(),
            during,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(fail("create temp file"))?;
        f.write_all(bytes).map_err(fail("write temp file"))?;
        f.sync_all().map_err(fail("sync temp file"))?;
        std::fs::rename(&tmp, path).map_err(fail("rename into place"))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    // Make the rename itself durable; not every platform lets a folder be
    // opened for this, so a failure here is not an error.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `412 MiB`, `6.0 GiB`, `900 KiB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let x = n as f64;
    if x >= KIB * KIB * KIB {
        format!("{:.1} GiB", x / (KIB * KIB * KIB))
    } else if x >= KIB * KIB {
        format!("{:.0} MiB", x / (KIB * KIB))
    } else if x >= KIB {
        format!("{:.0} KiB", x / KIB)
    } else {
        format!("{n} B")
    }
}

fn mib(n: u64) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

/// The tier's main ggml types: those with at least 5 % of its tensor
/// bytes, largest first, with their share.
fn main_types(tier: &Tier) -> String {
    let total: u64 = tier.type_mix.iter().map(|t| t.bytes).sum();
    if total == 0 {
        return "—".into();
    }
    let mut parts: Vec<String> = tier
        .type_mix
        .iter()
        .filter(|t| t.bytes * 20 >= total)
        .map(|t| {
            format!(
                "{} {:.0} %",
                t.ggml_type,
                t.bytes as f64 * 100.0 / total as f64
            )
        })
        .collect();
    if parts.is_empty() {
        parts.push(tier.type_mix[0].ggml_type.clone());
    }
    parts.join(", ")
}

/// Markdown table cells must not contain `|` or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The whole `report.md`.
pub fn markdown(file: &VariantsFile) -> String {
    let mut md = String::new();
    // `write!` into a String cannot fail; the results are ignored.
    let src = &file.source;
    let _ = writeln!(md, "# Variants of {}\n", cell(&file.model));

    let _ = writeln!(md, "## Source\n");
    let _ = writeln!(
        md,
        "- File: `{}` ({}, {})",
        src.file,
        human_bytes(src.size),
        src.digest
    );
    let _ = writeln!(
        md,
        "- Type: {} ({:.2} bits per weight), architecture {}, {:.1} M parameters, \
         training context {}, vocabulary {}",
        src.quantization,
        src.bpw,
        src.architecture,
        src.n_params as f64 / 1e6,
        src.n_ctx_train,
        src.n_vocab
    );
    if src.already_quantized {
        let gainless: Vec<&str> = file
            .tiers
            .iter()
            .filter(|t| t.no_quality_gain)
            .map(|t| t.name.as_str())
            .collect();
        let _ = writeln!(
            md,
            "\n> **Warning: the source is already quantized ({}).** Every metric below \
             compares against this quantized reference, not the original weights, so \
             the true loss of each tier is larger than shown. Tiers with more bits than \
             the source cannot be better than it and are marked *no quality gain*{}.",
            src.quantization,
            if gainless.is_empty() {
                " (none here)".to_string()
            } else {
                format!(": {}", gainless.join(", "))
            }
        );
    }

    let ev = &file.eval;
    let _ = writeln!(md, "\n## How quality was measured\n");
    let _ = writeln!(
        md,
        "llama-perplexity's method: the text is cut into windows of {} tokens and \
         the second half of each window is scored, by the reference (the source \
         file) and by each tier on the same tokens.\n",
        ev.n_ctx
    );
    let _ = writeln!(md, "- Text: {} ({})", ev.text, ev.text_digest);
    let _ = writeln!(
        md,
        "- Windows: {} of {} tokens; {} tokens scored per model",
        ev.chunks, ev.n_ctx, ev.scored_tokens
    );
    let _ = writeln!(md, "- Reference perplexity: {:.4}", ev.reference_ppl);
    let _ = writeln!(
        md,
        "- KLD: KL divergence of the tier's next-token distribution from the \
         reference's, nats per token; same-top: positions where both pick the same \
         most likely token; RMS Δp: root mean square change of the probability of \
         the actual next token, in percentage points"
    );

    let _ = writeln!(md, "\n## Tiers\n");
    let _ = writeln!(
        md,
        "| tier | size MiB | bpw | main types | PPL | PPL ratio | KLD mean | KLD p99 \
         | KLD max | same-top % | RMS Δp % | load ms | pp512 tok/s | tg128 tok/s \
         | peak RSS MiB |"
    );
    let _ = writeln!(md, "|{}", "---|".repeat(15));
    for t in &file.tiers {
        let q = &t.quality;
        let c = &t.cost;
        let name = if t.no_quality_gain {
            format!("{} (no quality gain)", cell(&t.name))
        } else {
            cell(&t.name)
        };
        let _ = writeln!(
            md,
            "| {name} | {:.1} | {:.2} | {} | {:.4} | {:.4} | {:.5} | {:.4} | {:.3} \
             | {:.2} | {:.3} | {:.0} | {:.1} | {:.1} | {:.0} |",
            mib(t.size),
            t.bpw,
            cell(&main_types(t)),
            q.ppl,
            q.ppl_ratio,
            q.kld_mean,
            q.kld_p99,
            q.kld_max,
            q.same_top_pct,
            q.rms_dp_pct,
            c.load_ms,
            c.pp512_tps,
            c.tg128_tps,
            mib(c.peak_rss_bytes)
        );
    }
    if file.tiers.is_empty() {
        let _ = writeln!(md, "\nNo tiers were built.");
    }

    let _ = writeln!(md, "\n## Merged tiers\n");
    if file.merged.is_empty() {
        let _ = writeln!(
            md,
            "None: every tier differs from the others by more than 3 % in size."
        );
    } else {
        let _ = writeln!(
            md,
            "Tiers within 3 % in size of a kept tier (usually llama.cpp fell back to the same \
             types) are not listed above. Size here counts only the tensors the tiers store \
             differently, so a large table every tier keeps alike does not hide real \
             differences:\n"
        );
        for m in &file.merged {
            let _ = writeln!(
                md,
                "- {} → {} (size differs by {:.2} %)",
                m.tier, m.into, m.size_diff_pct
            );
        }
    }

    let _ = writeln!(md, "\n## Recommendations per device class\n");
    let _ = writeln!(
        md,
        "| device class | RAM budget | KLD ceiling | tier | context | KV cache | memory \
         | predicted tg tok/s |"
    );
    let _ = writeln!(md, "|{}", "---|".repeat(8));
    for r in &file.recommendations {
        let class = file
            .device_classes
            .iter()
            .find(|c| c.name == r.device_class);
        let budget = class.map_or("?".into(), |c| human_bytes(c.ram_budget_bytes));
        let ceiling = class.map_or("?".into(), |c| c.kld_ceiling.to_string());
        match &r.tier {
            Some(tier) => {
                let _ = writeln!(
                    md,
                    "| {} | {budget} | {ceiling} | {} | {} | {} | {} | {:.1} |",
                    cell(&r.device_class),
                    cell(tier),
                    r.n_ctx,
                    r.kv_cache_type,
                    human_bytes(r.memory_bytes),
                    r.predicted_tg_tps
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "| {} | {budget} | {ceiling} | **nothing fits** | — | — | — | — |",
                    cell(&r.device_class)
                );
            }
        }
    }
    if file.recommendations.is_empty() {
        let _ = writeln!(md, "\nNo device classes were given.");
    } else {
        let _ = writeln!(md, "\nWhy:\n");
        for r in &file.recommendations {
            let _ = writeln!(md, "- **{}**: {}", r.device_class, r.reason);
        }
        let _ = writeln!(
            md,
            "\nMemory is weights + KV cache + compute buffers (one sequence, batches of \
             512) as estimated from the GGUF header; predicted speed is this host's tg128 \
             times the class's relative memory bandwidth, a rough guide."
        );
    }

    let _ = writeln!(md, "\n## Quality vs size\n");
    let _ = writeln!(md, "![quality vs size]({CHART_FILE})");

    let h = &file.host;
    let _ = writeln!(md, "\n## Host\n");
    let _ = writeln!(
        md,
        "Cost numbers (load time, pp512, tg128, peak RSS) were measured on: {}, {} \
         threads, llama.cpp {}.",
        h.cpu, h.threads, h.llama_cpp
    );
    let _ = writeln!(
        md,
        "\nMachine-readable: `variants.json` (format version {}).",
        file.format_version
    );
    md
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use outpost_protocol::variants::{
        Cost, DeviceClass, EvalInfo, HostInfo, Merged, Quality, Recommendation, SourceInfo,
        TypeShare, FORMAT_VERSION,
    };

    pub(crate) fn tier(name: &str, size_mib: u64, kld: f64, same_top: f64) -> Tier {
        Tier {
            name: name.into(),
            file: format!("m-{name}.gguf"),
            digest: "sha256:ab".into(),
            size: size_mib << 20,
            bpw: size_mib as f64 / 20.0,
            type_mix: vec![
                TypeShare {
                    ggml_type: "Q8_0".into(),
                    tensors: 100,
                    bytes: 900,
                },
                TypeShare {
                    ggml_type: "F32".into(),
                    tensors: 60,
                    bytes: 10,
                },
                TypeShare {
                    ggml_type: "Q6_K".into(),
                    tensors: 1,
                    bytes: 90,
                },
            ],
            no_quality_gain: false,
            quality: Quality {
                ppl: 20.0 * (1.0 + kld),
                ppl_ratio: 1.0 + kld,
                kld_mean: kld,
                kld_p99: kld * 8.0,
                kld_max: kld * 40.0,
                same_top_pct: same_top,
                rms_dp_pct: kld * 30.0,
            },
            cost: Cost {
                load_ms: 40.0,
                pp512_tps: 900.0,
                tg128_tps: 120.0,
                peak_rss_bytes: (size_mib + 50) << 20,
            },
            fingerprints: vec![],
        }
    }

    pub(crate) fn sample(already_quantized: bool) -> VariantsFile {
        let mut tiers = vec![
            tier("q8_0", 138, 0.0008, 98.9),
            tier("q5_1", 98, 0.006, 95.5),
            tier("q4_0", 84, 0.031, 90.2),
            tier("iq4_nl", 80, 0.024, 91.0),
            tier("q2_k", 62, 0.35, 70.1),
        ];
        tiers[0].no_quality_gain = already_quantized;
        VariantsFile {
            format_version: FORMAT_VERSION,
            model: "smollm2-135m".into(),
            source: SourceInfo {
                file: "SmolLM2-135M.Q4_1.gguf".into(),
                digest: "sha256:cd".into(),
                size: 100 << 20,
                quantization: if already_quantized { "Q4_1" } else { "F16" }.into(),
                bpw: if already_quantized { 5.0 } else { 16.0 },
                already_quantized,
                n_params: 134_515_008,
                architecture: "llama".into(),
                n_ctx_train: 8192,
                n_vocab: 49152,
            },
            eval: EvalInfo {
                text: "some prose package".into(),
                text_digest: "sha256:ef".into(),
                n_ctx: 512,
                chunks: 20,
                scored_tokens: 20 * 255,
                reference_ppl: 19.87,
            },
            host: HostInfo {
                cpu: "AMD EPYC".into(),
                threads: 2,
                llama_cpp: "b1234".into(),
            },
            tiers,
            merged: vec![Merged {
                tier: "q4_k_m".into(),
                into: "q5_1".into(),
                size_diff_pct: 1.2,
            }],
            device_classes: vec![
                DeviceClass {
                    name: "phone-4GB".into(),
                    ram_budget_bytes: 1 << 30,
                    relative_bandwidth: 0.25,
                    kld_ceiling: 0.15,
                },
                DeviceClass {
                    name: "watch".into(),
                    ram_budget_bytes: 32 << 20,
                    relative_bandwidth: 0.1,
                    kld_ceiling: 0.3,
                },
            ],
            recommendations: vec![
                Recommendation {
                    device_class: "phone-4GB".into(),
                    tier: Some("q8_0".into()),
                    n_ctx: 8192,
                    kv_cache_type: "f16".into(),
                    memory_bytes: 400 << 20,
                    predicted_tg_tps: 30.0,
                    reason: "q8_0: best quality within KLD 0.15".into(),
                },
                Recommendation {
                    device_class: "watch".into(),
                    tier: None,
                    n_ctx: 0,
                    kv_cache_type: String::new(),
                    memory_bytes: 0,
                    predicted_tg_tps: 0.0,
                    reason: "nothing fits 32 MiB: the smallest tier needs 80 MiB".into(),
                },
            ],
        }
    }

    #[test]
    fn table_has_one_row_per_tier() {
        let file = sample(false);
        let md = markdown(&file);
        let tiers_section = md
            .split("## Tiers")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("tiers section");
        let rows: Vec<&str> = tiers_section
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| tier "))
            .collect();
        assert_eq!(rows.len(), file.tiers.len(), "{tiers_section}");
        for (row, t) in rows.iter().zip(&file.tiers) {
            assert!(row.starts_with(&format!("| {} |", t.name)), "{row}");
            assert_eq!(row.matches('|').count(), 16, "{row}");
        }
        assert!(rows[0].contains("| 138.0 |"), "{}", rows[0]);
        assert!(rows[0].contains("Q8_0 90 %, Q6_K 9 %"), "{}", rows[0]);
        assert!(!rows[0].contains("F32"), "{}", rows[0]);
        assert!(md.contains("q4_k_m → q5_1 (size differs by 1.20 %)"));
        assert!(md.contains("![quality vs size](quality-vs-size.svg)"));
        assert!(md.contains("AMD EPYC, 2 threads, llama.cpp b1234"));
        assert!(md.contains("5100 tokens scored") && md.contains("19.8700"));
    }

    #[test]
    fn warning_appears_iff_the_source_is_quantized() {
        let plain = markdown(&sample(false));
        assert!(!plain.contains("Warning"));
        assert!(!plain.contains("no quality gain"));
        let quantized = markdown(&sample(true));
        assert!(quantized.contains("**Warning: the source is already quantized (Q4_1).**"));
        assert!(quantized.contains("marked *no quality gain*: q8_0."));
        assert!(quantized.contains("| q8_0 (no quality gain) |"));
    }

    #[test]
    fn recommendations_are_listed_with_reasons() {
        let md = markdown(&sample(false));
        assert!(
            md.contains("| phone-4GB | 1.0 GiB | 0.15 | q8_0 | 8192 | f16 | 400 MiB | 30.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| watch | 32 MiB | 0.3 | **nothing fits** |"),
            "{md}"
        );
        assert!(md.contains("- **phone-4GB**: q8_0: best quality within KLD 0.15"));
        assert!(md.contains("- **watch**: nothing fits 32 MiB"));
    }

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(900 << 10), "900 KiB");
        assert_eq!(human_bytes(412 << 20), "412 MiB");
        assert_eq!(human_bytes(6 << 30), "6.0 GiB");
    }

    #[test]
    fn write_atomic_replaces_whole_files_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("outpost-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("report.md");
        write_atomic(&p, b"first").expect("write");
        write_atomic(&p, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&p).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let e = write_atomic(&dir.join("missing/x.md"), b"x").expect_err("no folder");
        assert!(e.to_string().contains("missing/x.md"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
