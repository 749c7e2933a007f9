//! Canary fingerprints: for a few fixed prompts, a tier's own top-k
//! next-token log-probs at a few positions, as measured on the build host.
//! A device later runs the same prompts on its copy and checks that the
//! top tokens match and the log-probs are close (the kernel noise between
//! CPUs is ~0.1–0.2 nats on Gemma 3; see the engine's scheduler tests).

use outpost_engine::Model;
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
