//! Device classes and the per-class recommendation: which tier, context
//! size and KV-cache type a class of device should run, so that weights +
//! KV cache + compute buffers fit its memory budget and the tier stays
//! within the class's KLD ceiling.
//!
//! The built-in table ([`builtin_classes`]) can be overridden by a TOML file
//! ([`apply_overrides`], [`load_classes`]):
//!
//! ```toml
//! [[class]]
//! name = "phone-4GB"          # an existing name: replaces those fields
//! ram_budget = "1.5GiB"       # or a number of bytes
//! relative_bandwidth = 0.3
//! kld_ceiling = 0.12
//!
//! [[class]]
//! name = "watch-1GB"          # a new name: all four fields required
//! ram_budget = "256MiB"
//! relative_bandwidth = 0.1
//! kld_ceiling = 0.3
//! ```

use std::path::{Path, PathBuf};

use outpost_engine::gguf::GgufHeader;
use outpost_engine::{estimate_memory, EngineError};
use outpost_protocol::variants::{DeviceClass, Recommendation, Tier};
use serde::Deserialize;

use crate::report::human_bytes;

/// Context sizes tried, largest first.
pub const CONTEXT_LADDER: [u32; 5] = [8192, 4096, 2048, 1024, 512];

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Everything that can go wrong reading device classes or sizing a tier.
#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    #[error("cannot read device classes from {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or a field of the wrong type (the message has the
    /// line and column).
    #[error("device classes in {origin}: {message}")]
    Toml { origin: String, message: String },
    /// A field parsed but its value is not usable.
    #[error("device classes in {origin}, line {line}: {field} {problem}")]
    Value {
        origin: String,
        line: usize,
        field: String,
        problem: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The built-in device classes.
///
/// Budgets are the memory the *model* may take (weights + KV cache +
/// compute buffers), not the device's RAM: the OS, the app and other apps
/// keep the rest. A 4 GB phone leaves roughly 1 GiB to one app before the
/// OS starts killing it; an 8 GB phone about 2.5 GiB; a 16 GB laptop can
/// give ~6 GiB while a browser and an IDE keep running; a 32 GB desktop
/// about half its RAM, 16 GiB.
///
/// `relative_bandwidth` is decode speed relative to the build host (a
/// 2-core EPYC VM with DDR4), since token generation is bound by memory
/// bandwidth: rough guesses (LPDDR4X phone 0.25, LPDDR5 phone 0.5, a
/// laptop ≈ the host, a desktop with dual-channel DDR5 1.5), good for
/// ordering, not for promises.
///
/// `kld_ceiling` (mean KL divergence, nats/token) tightens with the class:
/// a phone accepts a coarser tier to fit at all (0.15, 0.10); laptops and
/// desktops have room, so they ask to stay close to the reference (0.05,
/// 0.03).
pub fn builtin_classes() -> Vec<DeviceClass> {
    let class = |name: &str, budget: u64, bw: f64, kld: f64| DeviceClass {
        name: name.to_string(),
        ram_budget_bytes: budget,
        relative_bandwidth: bw,
        kld_ceiling: kld,
    };
    vec![
        class("phone-4GB", GIB, 0.25, 0.15),
        class("phone-8GB", 5 * GIB / 2, 0.5, 0.10),
        class("laptop-16GB", 6 * GIB, 1.0, 0.05),
        class("desktop-32GB", 16 * GIB, 1.5, 0.03),
    ]
}

/// The built-in classes with the overrides of the TOML file at `path`.
pub fn load_classes(path: &Path) -> Result<Vec<DeviceClass>, DevicesError> {
    let text = std::fs::read_to_string(path).map_err(|source| DevicesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    apply_overrides(builtin_classes(), &text, &path.display().to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideFile {
    #[serde(default)]
    class: Vec<RawClass>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    name: toml::Spanned<String>,
    ram_budget: Option<toml::Spanned<toml::Value>>,
    relative_bandwidth: Option<toml::Spanned<f64>>,
    kld_ceiling: Option<toml::Spanned<f64>>,
}

/// `base` with the `[[class]]` entries of `toml_text` applied: a class with
/// an existing name has the fields it gives replaced (the others keep their
/// values); a new name adds a class and must give every field. `origin`
/// names the text in errors (usually the file path).
pub fn apply_overrides(
    mut base: Vec<DeviceClass>,
    toml_text: &str,
    origin: &str,
) -> Result<Vec<DeviceClass>, DevicesError> {
    let file: OverrideFile = toml::from_str(toml_text).map_err(|e| DevicesError::Toml {
        origin: origin.to_string(),
        message: format!(
            "{} (expected [[class]] tables with name, ram_budget, relative_bandwidth, kld_ceiling)",
            e.to_string().trim_end()
        ),
    })?;
    let line_of = |span: std::ops::Range<usize>| {
        let end = span.start.min(toml_text.len());
        toml_text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    };
    let bad = |span: std::ops::Range<usize>, field: &str, problem: String| DevicesError::Value {
        origin: origin.to_string(),
        line: line_of(span),
        field: field.to_string(),
        problem,
    };
    let mut seen: Vec<String> = Vec::new();
    for raw in file.class {
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(bad(
                raw.name.span(),
                "name",
                "is empty: expected a class name such as \"phone-4GB\"".into(),
            ));
        }
        if seen.contains(&name) {
            return Err(bad(
                raw.name.span(),
                "name",
                format!("{name:?} appears twice in this file: give each class once"),
            ));
        }
        seen.push(name.clone());

        let budget = match &raw.ram_budget {
            None => None,
            Some(v) => Some(
                parse_budget(v.get_ref())
                    .map_err(|problem| bad(v.span(), "ram_budget", problem))?,
            ),
        };
        let bandwidth = match &raw.relative_bandwidth {
            None => None,
            Some(v) if v.get_ref().is_finite() && *v.get_ref() > 0.0 => Some(*v.get_ref()),
            Some(v) => {
                return Err(bad(
                    v.span(),
                    "relative_bandwidth",
                    format!(
                        "= {}: expected a positive number (1.0 = as fast as the build host)",
                        v.get_ref()
                    ),
                ))
            }
        };
        let ceiling = match &raw.kld_ceiling {
            None => None,
            Some(v) if v.get_ref().is_finite() && *v.get_ref() >= 0.0 => Some(*v.get_ref()),
            Some(v) => {
                return Err(bad(
                    v.span(),
                    "kld_ceiling",
                    format!(
                        "= {}: expected a mean KLD in nats, 0 or more (e.g. 0.05)",
                        v.get_ref()
                    ),
                ))
            }
        };

        if let Some(existing) = base.iter_mut().find(|c| c.name == name) {
            if let Some(b) = budget {
                existing.ram_budget_bytes = b;
            }
            if let Some(b) = bandwidth {
                existing.relative_bandwidth = b;
            }
            if let Some(k) = ceiling {
                existing.kld_ceiling = k;
            }
            continue;
        }
        let missing: Vec<&str> = [
            ("ram_budget", budget.is_none()),
            ("relative_bandwidth", bandwidth.is_none()),
            ("kld_ceiling", ceiling.is_none()),
        ]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(f, _)| *f)
        .collect();
        match (budget, bandwidth, ceiling) {
            (Some(ram_budget_bytes), Some(relative_bandwidth), Some(kld_ceiling)) => {
                base.push(DeviceClass {
                    name,
                    ram_budget_bytes,
                    relative_bandwidth,
                    kld_ceiling,
                })
            }
            _ => {
                return Err(bad(
                    raw.name.span(),
                    &missing.join(", "),
                    format!(
                        "missing: {name:?} is a new class (not one of {}), so it needs ram_budget, relative_bandwidth and kld_ceiling",
                        names(&base)
                    ),
                ))
            }
        }
    }
    Ok(base)
}

fn names(classes: &[DeviceClass]) -> String {
    classes
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A byte count: an integer, or a string such as `"1GiB"`, `"1.5 GiB"`,
/// `"512MiB"`, `"2GB"` (binary KiB/MiB/GiB/TiB, decimal KB/MB/GB/TB, B).
fn parse_budget(value: &toml::Value) -> Result<u64, String> {
    const EXPECTED: &str =
        "expected a positive number of bytes or a size such as \"1GiB\", \"512MiB\", \"2GB\"";
    let bytes = match value {
        toml::Value::Integer(n) if *n > 0 => return Ok(*n as u64),
        toml::Value::String(s) => {
            let s = s.trim();
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let num: f64 = num.parse().map_err(|_| format!("= {s:?}: {EXPECTED}"))?;
            let scale = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1.0,
                "kib" => 1024.0,
                "mib" => MIB as f64,
                "gib" => GIB as f64,
                "tib" => (GIB as f64) * 1024.0,
                "kb" => 1e3,
                "mb" => 1e6,
                "gb" => 1e9,
                "tb" => 1e12,
                other => return Err(format!("= {s:?}: unknown unit {other:?}; {EXPECTED}")),
            };
            num * scale
        }
        other => return Err(format!("= {other}: {EXPECTED}")),
    };
    if bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64 {
        Ok(bytes.round() as u64)
    } else {
        Err(format!("is {bytes} bytes: {EXPECTED}"))
    }
}

/// Bytes the tier in `header` needs with `n_ctx` KV cells, one sequence
/// and batches of 512: [`estimate_memory`]'s weights + KV cache + compute,
/// with the KV cache scaled by 34/64 when it is q8_0 (34 bytes per block of
/// 32 values, against 64 for f16).
pub fn memory_for(header: &GgufHeader, n_ctx: u32, kv_q8: bool) -> Result<u64, DevicesError> {
    let est = estimate_memory(header, u64::from(n_ctx), 1, 512)?;
    let kv = if kv_q8 {
        (est.kv_cache * 34).div_ceil(64)
    } else {
        est.kv_cache
    };
    Ok(est.weights + kv + est.compute)
}

fn kv_name(kv_q8: bool) -> &'static str {
    if kv_q8 {
        "q8_0"
    } else {
        "f16"
    }
}

/// One recommendation per class, in the order of `classes`.
///
/// Among the tiers whose mean KLD is within the class's ceiling, the best
/// quality (lowest mean KLD; on a tie the smaller file) that fits the
/// budget at some context size wins, at the largest context of
/// [`CONTEXT_LADDER`] that fits, trying f16 KV and then q8_0 KV before a
/// smaller context. `memory(tier, n_ctx, kv_q8)` gives the bytes a tier
/// needs (see [`memory_for`]). When nothing fits, `tier` is None,
/// `n_ctx` and `memory_bytes` are 0, `kv_cache_type` is empty, and
/// `reason` says what failed.
pub fn recommend(
    tiers: &[Tier],
    memory: impl Fn(&Tier, u32, bool) -> u64,
    classes: &[DeviceClass],
) -> Vec<Recommendation> {
    let mut by_quality: Vec<&Tier> = tiers.iter().collect();
    by_quality.sort_by(|a, b| {
        a.quality
            .kld_mean
            .total_cmp(&b.quality.kld_mean)
            .then(a.size.cmp(&b.size))
    });
    classes
        .iter()
        .map(|class| recommend_one(&by_quality, &memory, class))
        .collect()
}

fn recommend_one(
    by_quality: &[&Tier],
    memory: &impl Fn(&Tier, u32, bool) -> u64,
    class: &DeviceClass,
) -> Recommendation {
    let budget = class.ram_budget_bytes;
    let ceiling = class.kld_ceiling;
    let nothing = |reason: String| Recommendation {
        device_class: class.name.clone(),
        tier: None,
        n_ctx: 0,
        kv_cache_type: String::new(),
        memory_bytes: 0,
        predicted_tg_tps: 0.0,
        reason,
    };
    let Some(best_available) = by_quality.first() else {
        return nothing("no tiers were built, so there is nothing to recommend".into());
    };
    let eligible: Vec<&Tier> = by_quality
        .iter()
        .copied()
        .filter(|t| t.quality.kld_mean <= ceiling)
        .collect();
    if eligible.is_empty() {
        return nothing(format!(
            "no tier meets the KLD ceiling {ceiling} nats: the best available is {} at {:.4}",
            best_available.name, best_available.quality.kld_mean
        ));
    }
    // Better tiers skipped because they do not fit even at the smallest
    // context with q8_0 KV: (name, bytes needed then).
    let mut skipped: Vec<(&str, u64)> = Vec::new();
    for tier in &eligible {
        for n_ctx in CONTEXT_LADDER {
            for kv_q8 in [false, true] {
                let bytes = memory(tier, n_ctx, kv_q8);
                if bytes > budget {
                    continue;
                }
                let mut reason = format!(
                    "{}: best quality within KLD {ceiling} (mean KLD {:.4}) that fits {} with {n_ctx} ctx ({} KV): {}",
                    tier.name,
                    tier.quality.kld_mean,
                    human_bytes(budget),
                    kv_name(kv_q8),
                    human_bytes(bytes)
                );
                if let Some((name, need)) = skipped.first() {
                    reason.push_str(&format!(
                        "; {name} is closer to the reference but needs {} even at {} ctx with q8_0 KV",
                        human_bytes(*need),
                        CONTEXT_LADDER[CONTEXT_LADDER.len() - 1]
                    ));
                }
                return Recommendation {
                    device_class: class.name.clone(),
                    tier: Some(tier.name.clone()),
                    n_ctx,
                    kv_cache_type: kv_name(kv_q8).to_string(),
                    memory_bytes: bytes,
                    predicted_tg_tps: tier.cost.tg128_tps * class.relative_bandwidth,
                    reason,
                };
            }
        }
        let smallest_ctx = CONTEXT_LADDER[CONTEXT_LADDER.len() - 1];
        skipped.push((&tier.name, memory(tier, smallest_ctx, true)));
    }
    let smallest_ctx = CONTEXT_LADDER[CONTEXT_LADDER.len() - 1];
    let (small_name, small_need) = skipped
        .iter()
        .min_by_key(|(_, need)| *need)
        .copied()
        .unwrap_or(("?", 0));
    let mut reason = format!(
        "nothing fits {}: the smallest tier within KLD {ceiling}, {small_name}, needs {} at {smallest_ctx} ctx with q8_0 KV",
        human_bytes(budget),
        human_bytes(small_need)
    );
    let over_ceiling_fit = by_quality
        .iter()
        .filter(|t| t.quality.kld_mean > ceiling)
        .find(|t| memory(t, smallest_ctx, true) <= budget);
    if let Some(t) = over_ceiling_fit {
        reason.push_str(&format!(
            "; {} would fit but its mean KLD {:.4} is above the ceiling",
            t.name, t.quality.kld_mean
        ));
    }
    nothing(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::variants::{Cost, Quality};

    fn tier(name: &str, size_mib: u64, kld: f64) -> Tier {
        Tier {
            name: name.into(),
            file: format!("m-{name}.gguf"),
            digest: "sha256:00".into(),
            size: size_mib * MIB,
            bpw: 4.0,
            type_mix: vec![],
            no_quality_gain: false,
            quality: Quality {
                ppl: 10.0,
                ppl_ratio: 1.0 + kld,
                kld_mean: kld,
                kld_p99: kld * 10.0,
                kld_max: kld * 50.0,
                same_top_pct: 100.0 - kld * 100.0,
                rms_dp_pct: kld * 20.0,
            },
            cost: Cost {
                load_ms: 50.0,
                pp512_tps: 1000.0,
                tg128_tps: 100.0,
                peak_rss_bytes: size_mib * MIB * 2,
            },
            fingerprints: vec![],
        }
    }

    fn class(name: &str, budget_mib: u64, kld: f64) -> DeviceClass {
        DeviceClass {
            name: name.into(),
            ram_budget_bytes: budget_mib * MIB,
            relative_bandwidth: 0.5,
            kld_ceiling: kld,
        }
    }

    /// Weights + 1 KiB per cell of f16 KV (q8_0: 34/64 of it) + 10 MiB.
    fn mem(t: &Tier, n_ctx: u32, q8: bool) -> u64 {
        let kv = u64::from(n_ctx) * 1024;
        t.size + if q8 { kv * 34 / 64 } else { kv } + 10 * MIB
    }

    fn tiers() -> Vec<Tier> {
        vec![
            tier("q8_0", 140, 0.002),
            tier("q6_k", 110, 0.01),
            tier("q4_k_m", 100, 0.04),
            tier("q4_0", 80, 0.08),
            tier("q2_k", 60, 0.4),
        ]
    }

    #[test]
    fn picks_best_quality_within_the_ceiling() {
        let recs = recommend(
            &tiers(),
            mem,
            &[class("big", 1024, 0.05), class("strict", 1024, 0.005)],
        );
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].tier.as_deref(), Some("q8_0"));
        assert_eq!(recs[0].n_ctx, 8192);
        assert_eq!(recs[0].kv_cache_type, "f16");
        assert_eq!(recs[0].memory_bytes, mem(&tiers()[0], 8192, false));
        assert!((recs[0].predicted_tg_tps - 50.0).abs() < 1e-9);
        assert!(
            recs[0]
                .reason
                .starts_with("q8_0: best quality within KLD 0.05"),
            "{}",
            recs[0].reason
        );
        assert!(
            recs[0].reason.contains("8192 ctx (f16 KV)"),
            "{}",
            recs[0].reason
        );
        // Ceiling excludes everything but q8_0.
        assert_eq!(recs[1].tier.as_deref(), Some("q8_0"));
        // A looser ceiling still takes the best quality, not the smallest.
        let loose = recommend(&tiers(), mem, &[class("loose", 1024, 1.0)]);
        assert_eq!(loose[0].tier.as_deref(), Some("q8_0"));
    }

    #[test]
    fn equal_kld_prefers_the_smaller_tier() {
        let ts = vec![tier("big", 200, 0.01), tier("small", 150, 0.01)];
        let recs = recommend(&ts, mem, &[class("c", 1024, 0.05)]);
        assert_eq!(recs[0].tier.as_deref(), Some("small"));
    }

    #[test]
    fn falls_to_q8_kv_then_to_smaller_context_then_to_a_smaller_tier() {
        let ts = tiers();
        let q8 = &ts[0];
        // f16 at 8192 does not fit, q8_0 at 8192 does.
        let budget = mem(q8, 8192, true);
        let c = DeviceClass {
            ram_budget_bytes: budget,
            ..class("c", 0, 0.05)
        };
        let r = &recommend(&ts, mem, std::slice::from_ref(&c))[0];
        assert_eq!(
            (r.tier.as_deref(), r.n_ctx, r.kv_cache_type.as_str()),
            (Some("q8_0"), 8192, "q8_0")
        );
        // Only f16 at 4096 fits (4096 f16 = 4 MiB < 8192 q8_0 = 4.25 MiB).
        let c = DeviceClass {
            ram_budget_bytes: mem(q8, 4096, false),
            ..c
        };
        let r = &recommend(&ts, mem, std::slice::from_ref(&c))[0];
        assert_eq!(
            (r.tier.as_deref(), r.n_ctx, r.kv_cache_type.as_str()),
            (Some("q8_0"), 4096, "f16")
        );
        // q8_0 does not fit at 512 with q8_0 KV: q6_k is next best.
        let c = DeviceClass {
            ram_budget_bytes: mem(q8, 512, true) - 1,
            ..c
        };
        let r = &recommend(&ts, mem, std::slice::from_ref(&c))[0];
        assert_eq!(
            (r.tier.as_deref(), r.n_ctx, r.kv_cache_type.as_str()),
            (Some("q6_k"), 8192, "f16")
        );
        assert!(
            r.reason
                .contains("q8_0 is closer to the reference but needs"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn says_plainly_when_nothing_fits() {
        let recs = recommend(&tiers(), mem, &[class("tiny", 75, 0.1)]);
        let r = &recs[0];
        assert_eq!(r.tier, None);
        assert_eq!((r.n_ctx, r.memory_bytes), (0, 0));
        assert!(r.reason.starts_with("nothing fits 75 MiB"), "{}", r.reason);
        assert!(r.reason.contains("q4_0, needs 90 MiB"), "{}", r.reason);
        assert!(r.reason.contains("q2_k would fit"), "{}", r.reason);

        let recs = recommend(&tiers(), mem, &[class("picky", 1024, 0.001)]);
        assert_eq!(recs[0].tier, None);
        assert!(
            recs[0]
                .reason
                .contains("no tier meets the KLD ceiling 0.001")
                && recs[0].reason.contains("q8_0 at 0.0020"),
            "{}",
            recs[0].reason
        );

        let recs = recommend(&[], mem, &builtin_classes());
        assert_eq!(recs.len(), 4);
        assert!(recs.iter().all(|r| r.tier.is_none()));
    }

    #[test]
    fn memory_for_scales_the_kv_cache_for_q8_0() {
        use outpost_engine::gguf::{MetaValue, TensorInfo};
        let meta = [
            ("general.architecture", MetaValue::Str("llama".into())),
            ("llama.block_count", MetaValue::UInt(30)),
            ("llama.embedding_length", MetaValue::UInt(576)),
            ("llama.attention.head_count", MetaValue::UInt(9)),
            ("llama.attention.head_count_kv", MetaValue::UInt(3)),
            ("llama.feed_forward_length", MetaValue::UInt(1536)),
        ];
        let header = GgufHeader {
            path: "synthetic.gguf".into(),
            version: 3,
            file_size: 100 * MIB,
            metadata: meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            tensors: vec![TensorInfo {
                name: "token_embd.weight".into(),
                dims: vec![576, 49152],
                ggml_type: 8,
                type_name: "q8_0".into(),
                offset: 0,
                n_bytes: 0,
            }],
            data_offset: 0,
        };
        let est = estimate_memory(&header, 4096, 1, 512).expect("estimate");
        let f16 = memory_for(&header, 4096, false).expect("f16");
        let q8 = memory_for(&header, 4096, true).expect("q8");
        assert_eq!(f16, est.total());
        // 30 layers × 4096 cells × 3 heads × (64 + 64) × 2 bytes = 90 MiB.
        assert_eq!(est.kv_cache, 90 * MIB);
        assert_eq!(f16 - q8, 90 * MIB - 90 * MIB * 34 / 64);
        assert!(memory_for(&header, 8192, false).expect("8k") > f16);
        let mut broken = header.clone();
        broken.tensors.clear();
        assert!(memory_for(&broken, 512, false).is_err());
    }

    #[test]
    fn builtin_table_is_ordered_and_sane() {
        let b = builtin_classes();
        let names: Vec<_> = b.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["phone-4GB", "phone-8GB", "laptop-16GB", "desktop-32GB"]
        );
        for w in b.windows(2) {
            assert!(w[0].ram_budget_bytes < w[1].ram_budget_bytes);
            assert!(w[0].relative_bandwidth < w[1].relative_bandwidth);
            assert!(w[0].kld_ceiling > w[1].kld_ceiling);
        }
    }

    #[test]
    fn toml_replaces_existing_and_adds_new_classes() {
        let text = r#"
[[class]]
name = "phone-4GB"
ram_budget = "1.5GiB"

[[class]]
name = "watch"
ram_budget = 268435456
relative_bandwidth = 0.1
kld_ceiling = 1

[[class]]
name = "server"
ram_budget = "64 GB"
relative_bandwidth = 3.0
kld_ceiling = 0.01
"#;
        let c = apply_overrides(builtin_classes(), text, "t.toml").expect("valid");
        assert_eq!(c.len(), 6);
        assert_eq!(c[0].name, "phone-4GB");
        assert_eq!(c[0].ram_budget_bytes, 3 * GIB / 2);
        assert_eq!(c[0].relative_bandwidth, 0.25, "fields left out are kept");
        assert_eq!(c[4].name, "watch");
        assert_eq!(c[4].ram_budget_bytes, 256 * MIB);
        assert_eq!(c[4].kld_ceiling, 1.0);
        assert_eq!(c[5].ram_budget_bytes, 64_000_000_000);
        assert_eq!(
            apply_overrides(builtin_classes(), "", "e").expect("empty"),
            builtin_classes()
        );
    }

    fn err(text: &str) -> String {
        apply_overrides(builtin_classes(), text, "d.toml")
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn toml_errors_name_line_field_and_expectation() {
        let e = err("[[class]\nname = 1");
        assert!(
            e.starts_with("device classes in d.toml:") && e.contains("line 1"),
            "{e}"
        );

        let e = err("[[class]]\nname = \"x\"\nram_budget = \"lots\"\nrelative_bandwidth = 1.0\nkld_ceiling = 0.1\n");
        assert!(
            e.contains("line 3: ram_budget") && e.contains("\"1GiB\""),
            "{e}"
        );

        let e = err("[[class]]\nname = \"x\"\nram_budget = \"2 parsecs\"\n");
        assert!(e.contains("unknown unit \"parsecs\""), "{e}");

        let e = err("[[class]]\nname = \"phone-8GB\"\n\nrelative_bandwidth = -1\n");
        assert!(
            e.contains("line 4: relative_bandwidth = -1") && e.contains("positive"),
            "{e}"
        );

        let e = err("[[class]]\nname = \"phone-8GB\"\nkld_ceiling = \"low\"\n");
        assert!(e.contains("line 3") && e.contains("kld_ceiling"), "{e}");

        let e = err("[[class]]\nname = \"new\"\nram_budget = \"1GiB\"\n");
        assert!(
            e.contains("line 2: relative_bandwidth, kld_ceiling missing")
                && e.contains("new class"),
            "{e}"
        );

        let e = err("[[class]]\nname = \"phone-8GB\"\nram = 1\n");
        assert!(
            e.contains("unknown field") && e.contains("ram_budget"),
            "{e}"
        );

        let e = err("[[class]]\nname = \"a\"\nram_budget = 1\nrelative_bandwidth = 1\nkld_ceiling = 1\n[[class]]\nname = \"a\"\n");
        assert!(e.contains("line 7: name") && e.contains("twice"), "{e}");

        let e = err("[[class]]\nname = \"phone-8GB\"\nram_budget = 0\n");
        assert!(e.contains("line 3: ram_budget = 0"), "{e}");
    }
}
