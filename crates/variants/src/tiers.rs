//! Tier names: the defaults, parsing a `--tiers` list, and ordering.

use outpost_engine::QUANT_TIERS;

use crate::VariantsError;

/// The default candidates. Beyond the K types, they include q5_1, q5_0,
/// q4_1, iq4_nl and q4_0: on models whose rows are not a multiple of 256
/// (SmolLM2: 576, Gemma 3 270M: 640) llama.cpp falls back from K types to
/// these on most tensors, and tiers within 3 % in size are merged, so these
/// keep at least five distinct points.
pub const DEFAULT_TIERS: &[&str] = &[
    "q8_0", "q6_k", "q5_1", "q5_k_m", "q5_0", "q4_1", "q4_k_m", "iq4_nl", "q4_0", "q3_k_m", "q2_k",
];

/// Parses a comma-separated list (or `default`), keeping the order of
/// [`QUANT_TIERS`] (most bits first) and dropping repeats.
pub fn parse(list: &str) -> Result<Vec<String>, VariantsError> {
    let mut asked = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if raw.eq_ignore_ascii_case("default") {
            asked.extend(DEFAULT_TIERS.iter().map(|s| s.to_string()));
            continue;
        }
        let lower = raw.to_ascii_lowercase();
        if !QUANT_TIERS.iter().any(|(n, _, _)| *n == lower) {
            return Err(VariantsError::UnknownTier {
                name: raw.to_string(),
                valid: QUANT_TIERS
                    .iter()
                    .map(|(n, _, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        asked.push(lower);
    }
    if asked.is_empty() {
        return Err(VariantsError::UnknownTier {
            name: list.to_string(),
            valid: "a comma-separated list, or `default`".into(),
        });
    }
    let mut ordered: Vec<String> = QUANT_TIERS
        .iter()
        .map(|(n, _, _)| n.to_string())
        .filter(|n| asked.contains(n))
        .collect();
    ordered.dedup();
    Ok(ordered)
}

/// Sizes within this fraction of a kept tier's are merged into it. The
/// pipeline compares the bytes in which tiers differ (tensors stored alike
/// in every tier are left out).
pub const MERGE_WITHIN: f64 = 0.03;

/// Which tiers to keep: walking `sizes` in order, a tier within 3 % of an
/// already kept one is merged into it. Returns `(kept, merged)` where
/// merged entries are `(index, kept index, difference %)`.
pub fn merge(sizes: &[u64]) -> (Vec<usize>, Vec<(usize, usize, f64)>) {
    let mut kept: Vec<usize> = Vec::new();
    let mut merged = Vec::new();
    for (i, &s) in sizes.iter().enumerate() {
        let near = kept.iter().copied().find_map(|k| {
            let diff = (s as f64 - sizes[k] as f64).abs() / sizes[k] as f64;
            (diff <= MERGE_WITHIN).then_some((k, diff * 100.0))
        });
        match near {
            Some((k, pct)) => merged.push((i, k, pct)),
            None => kept.push(i),
        }
    }
    (kept, merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_bit_order_and_names_unknown_tiers() {
        assert_eq!(parse("q4_0, Q8_0,q4_0").expect("ok"), ["q8_0", "q4_0"]);
        assert_eq!(parse("default").expect("ok").len(), DEFAULT_TIERS.len());
        let e = parse("q8_0,q9_9").expect_err("unknown").to_string();
        assert!(e.contains("q9_9") && e.contains("q4_k_m"), "{e}");
        assert!(parse(" , ").is_err());
    }

    #[test]
    fn merges_tiers_within_three_percent() {
        let (kept, merged) = merge(&[1000, 990, 900, 880, 500]);
        assert_eq!(kept, [0, 2, 4]);
        assert_eq!(merged.len(), 2);
        assert_eq!((merged[0].0, merged[0].1), (1, 0));
        assert_eq!((merged[1].0, merged[1].1), (3, 2));
    }
}
