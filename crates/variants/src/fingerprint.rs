//! Canary fingerprints: for a few fixed prompts, a tier's own top-k
//! next-token log-probs at a few positions, as measured on the build host.
//! A device later runs the same prompts on its copy and checks that the
//! top tokens match and the log-probs are close (the kernel noise between
//! CPUs is ~0.1–0.2 nats on Gemma 3; see the engine's scheduler tests).

use outpost_engine::Model;
use outpost_protocol::manifest::EmbeddingCanary;
use outpost_protocol::variants::Fingerprint;

use crate::quality::log_softmax;
use crate::VariantsError;

/// The fixed prompts (plain text, scored with BOS).
pub const PROMPTS: &[&str] = &[
    "The capital of France is Paris, and the capital of Italy is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "Water boils at a temperature of one hundred degrees",
];

/// Top-k entries kept per position.
pub const TOP_K: usize = 5;

/// Positions (fractions of the prompt) at which the next token is recorded.
const AT: &[f64] = &[0.5, 1.0];

/// How far a model's predictions are from a set of fingerprints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanaryCheck {
    /// Worst KL divergence (fingerprint ‖ model) over the positions, each
    /// over the fingerprint's top tokens renormalised; NaN or infinite
    /// logits give infinity.
    pub kld: f64,
    /// Share of positions where the model's most likely token is the
    /// fingerprint's first.
    pub same_top: f64,
}

/// The worst cosine of `vectors` (a device's, in order) to the embedding
/// canaries' build-host vectors; `None` (a failure) when any vector has
/// another width or is not finite, or a vector is missing.
pub fn worst_cosine(canaries: &[EmbeddingCanary], vectors: &[Vec<f32>]) -> Option<f64> {
    if canaries.len() != vectors.len() {
        return None;
    }
    let mut worst = 1.0f64;
    for (c, v) in canaries.iter().zip(vectors) {
        let cos = outpost_engine::cosine(&c.vector, v);
        if c.vector.len() != v.len() || !cos.is_finite() {
            return None;
        }
        worst = worst.min(cos);
    }
    Some(worst)
}

/// Runs each fingerprint's prompt through `model` (as [`fingerprints`]
/// does) and compares the next-token log-probs at its position.
pub fn check(
    model: &Model,
    canaries: &[Fingerprint],
    threads: Option<u32>,
) -> Result<CanaryCheck, VariantsError> {
    let mut worst = 0f64;
    let mut same = 0usize;
    let mut lp = Vec::new();
    let mut prompts: Vec<&str> = canaries.iter().map(|c| c.prompt.as_str()).collect();
    prompts.dedup();
    for prompt in prompts {
        let tokens = model.tokenize(prompt, true);
        let here: Vec<&Fingerprint> = canaries.iter().filter(|c| c.prompt == prompt).collect();
        model.eval_logits(&tokens, threads, |i, logits| {
            for c in here.iter().filter(|c| c.position as usize == i + 1) {
                log_softmax(logits, &mut lp);
                let argmax = (0..lp.len()).max_by(|&a, &b| lp[a].total_cmp(&lp[b]));
                if c.top.first().map(|t| t.0 as usize) == argmax {
                    same += 1;
                }
                let dev: Vec<f64> = c
                    .top
                    .iter()
                    .map(|&(t, _)| lp.get(t as usize).map_or(f64::NEG_INFINITY, |&v| v))
                    .collect();
                let reference: Vec<f64> = c.top.iter().map(|&(_, l)| f64::from(l)).collect();
                worst = worst.max(renormalised_kld(&reference, &dev));
            }
        })?;
    }
    Ok(CanaryCheck {
        kld: worst,
        same_top: same as f64 / canaries.len().max(1) as f64,
    })
}

/// KL(p ‖ q) of two log-prob lists over the same tokens, each renormalised
/// to sum to one. Anything not finite in `q` makes it infinite.
fn renormalised_kld(p: &[f64], q: &[f64]) -> f64 {
    let norm = |v: &[f64]| {
        let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z = v.iter().map(|x| (x - m).exp()).sum::<f64>().ln() + m;
        v.iter().map(|x| x - z).collect::<Vec<f64>>()
    };
    if q.iter().any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    let (p, q) = (norm(p), norm(q));
    let k: f64 = p.iter().zip(&q).map(|(a, b)| a.exp() * (a - b)).sum();
    if k.is_finite() {
        k.max(0.0)
    } else {
        f64::INFINITY
    }
}

/// The fingerprints of `model`.
pub fn fingerprints(
    model: &Model,
    threads: Option<u32>,
) -> Result<Vec<Fingerprint>, VariantsError> {
    let mut out = Vec::new();
    let mut lp = Vec::new();
    for prompt in PROMPTS {
        let tokens = model.tokenize(prompt, true);
        let positions: Vec<usize> = AT
            .iter()
            .map(|f| ((tokens.len() as f64 * f).round() as usize).clamp(1, tokens.len()))
            .collect();
        let mut found = Vec::new();
        model.eval_logits(&tokens, threads, |i, logits| {
            if positions.contains(&(i + 1)) {
                log_softmax(logits, &mut lp);
                let mut idx: Vec<usize> = (0..lp.len()).collect();
                idx.select_nth_unstable_by(TOP_K, |&a, &b| lp[b].total_cmp(&lp[a]));
                idx.truncate(TOP_K);
                idx.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
                found.push(Fingerprint {
                    prompt: (*prompt).to_string(),
                    position: (i + 1) as u32,
                    top: idx.iter().map(|&t| (t as i32, lp[t] as f32)).collect(),
                });
            }
        })?;
        out.extend(found);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{renormalised_kld, worst_cosine, EmbeddingCanary};

    #[test]
    fn worst_cosine_is_the_worst_pair_and_none_for_a_broken_vector() {
        let c = |v: &[f32]| EmbeddingCanary {
            text: "t".into(),
            vector: v.to_vec(),
        };
        let canaries = [c(&[1.0, 0.0]), c(&[0.0, 1.0])];
        let w = worst_cosine(&canaries, &[vec![1.0, 0.0], vec![0.6, 0.8]]).expect("finite");
        assert!((w - 0.8).abs() < 1e-6, "{w}");
        assert_eq!(worst_cosine(&canaries, &[vec![1.0, 0.0], vec![1.0]]), None);
        assert_eq!(
            worst_cosine(&canaries, &[vec![1.0, 0.0], vec![f32::NAN, 1.0]]),
            None
        );
        assert_eq!(worst_cosine(&canaries, &[vec![1.0, 0.0]]), None);
    }

    #[test]
    fn kld_is_zero_for_equal_lists_and_grows_with_the_difference() {
        let p = [-0.5, -1.5, -2.0];
        assert!(renormalised_kld(&p, &p).abs() < 1e-12);
        // A constant shift renormalises away.
        assert!(renormalised_kld(&p, &[-1.5, -2.5, -3.0]).abs() < 1e-12);
        let near = renormalised_kld(&p, &[-0.6, -1.4, -2.0]);
        let far = renormalised_kld(&p, &[-3.0, -0.2, -2.0]);
        assert!(near > 0.0 && far > near * 10.0, "{near} {far}");
        assert!(renormalised_kld(&p, &[f64::NAN, -1.0, -2.0]).is_infinite());
    }
}
