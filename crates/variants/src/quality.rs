//! Quality of each tier against the reference, llama-perplexity's way:
//! the same windows of the same text through every model in lockstep (one
//! chunk at a time, reference first), so the reference's full distribution
//! is compared with each tier's exactly, on every scored position, without
//! storing the reference's logits for the whole text (Gemma's vocabulary is
//! 262,144 entries).

use outpost_engine::{ChunkEval, Model};
use outpost_protocol::variants::Quality;

use crate::VariantsError;

/// Log-softmax of `logits` into `out`.
pub fn log_softmax(logits: &[f32], out: &mut Vec<f64>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    out.clear();
    out.extend(logits.iter().map(|&l| l as f64 - lse));
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Running sums for one model.
#[derive(Debug, Default, Clone)]
struct Acc {
    nll: f64,
    n: u64,
    klds: Vec<f64>,
    same_top: u64,
    dp2: f64,
}

/// What the reference itself scored.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceScore {
    pub ppl: f64,
    pub scored_tokens: u64,
}

/// Scores `tokens` in chunks of `n_ctx` on `reference` and every model of
/// `tiers`, calling `progress(chunk, chunks)` after each chunk.
pub fn evaluate(
    reference: &Model,
    tiers: &[&Model],
    tokens: &[i32],
    n_ctx: u32,
    chunks: usize,
    threads: Option<u32>,
    mut progress: impl FnMut(usize, usize),
) -> Result<(ReferenceScore, Vec<Quality>), VariantsError> {
    let n = n_ctx as usize;
    if tokens.len() < chunks * n {
        return Err(VariantsError::TextTooShort {
            tokens: tokens.len(),
            needed: chunks * n,
            chunks,
            n_ctx,
        });
    }
    let mut ref_acc = Acc::default();
    let mut accs = vec![Acc::default(); tiers.len()];
    let mut ref_rows: Vec<Vec<f64>> = Vec::new();
    let mut tier_lp = Vec::new();
    for c in 0..chunks {
        let chunk = &tokens[c * n..(c + 1) * n];
        // Reference: keep every scored row's log-probs for this chunk.
        ref_rows.clear();
        {
            let mut ev = ChunkEval::new(reference, n_ctx, threads)?;
            ev.chunk(chunk, |pos, logits| {
                let mut lp = Vec::with_capacity(logits.len());
                log_softmax(logits, &mut lp);
                ref_acc.nll -= lp[chunk[pos + 1] as usize];
                ref_acc.n += 1;
                ref_rows.push(lp);
            })?;
        }
        for (t, model) in tiers.iter().enumerate() {
            let acc = &mut accs[t];
            let mut ev = ChunkEval::new(model, n_ctx, threads)?;
            let first = ev.first();
            ev.chunk(chunk, |pos, logits| {
                log_softmax(logits, &mut tier_lp);
                let r = &ref_rows[pos - first];
                let next = chunk[pos + 1] as usize;
                acc.nll -= tier_lp[next];
                acc.n += 1;
                let kld: f64 = r
                    .iter()
                    .zip(&tier_lp)
                    .map(|(&p, &q)| if p > -50.0 { p.exp() * (p - q) } else { 0.0 })
                    .sum();
                acc.klds.push(kld.max(0.0));
                if argmax(r) == argmax(&tier_lp) {
                    acc.same_top += 1;
                }
                let dp = tier_lp[next].exp() - r[next].exp();
                acc.dp2 += dp * dp;
            })?;
        }
        progress(c + 1, chunks);
    }
    let ref_ppl = (ref_acc.nll / ref_acc.n.max(1) as f64).exp();
    let qualities = accs
        .into_iter()
        .map(|mut a| {
            let n = a.n.max(1) as f64;
            a.klds.sort_by(|x, y| x.total_cmp(y));
            let ppl = (a.nll / n).exp();
            let p99 = a
                .klds
                .get(((a.klds.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(0.0);
            Quality {
                ppl,
                ppl_ratio: ppl / ref_ppl,
                kld_mean: a.klds.iter().sum::<f64>() / n,
                kld_p99: p99,
                kld_max: a.klds.last().copied().unwrap_or(0.0),
                same_top_pct: 100.0 * a.same_top as f64 / n,
                rms_dp_pct: 100.0 * (a.dp2 / n).sqrt(),
            }
        })
        .collect();
    Ok((
        ReferenceScore {
            ppl: ref_ppl,
            scored_tokens: ref_acc.n,
        },
        qualities,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises() {
        let mut out = Vec::new();
        log_softmax(&[1.0, 2.0, 3.0, -1000.0], &mut out);
        let total: f64 = out.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        assert_eq!(argmax(&out), 2);
        assert!(out[3] < -900.0);
    }
}
