//! What one decode step costs on this model and machine, probed when a
//! scheduler starts (`fixed + per_row * rows`, see `draft::StepCost`), and
//! the prompt grouping the scheduler derives from it. Drafting weighs
//! guesses by the same probe until it has timed real steps (`draft.rs`).

use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::draft::{StepCost, FREE_ROWS};

/// Times a 1-row and a [`FREE_ROWS`]-row step (every row with logits, best
/// of three after a warm-up) on sequence 0, then empties it.
pub(crate) fn measure_step_cost(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
) -> Option<StepCost> {
    let mut time = |rows: usize| -> Option<f64> {
        batch.clear();
        for p in 0..rows {
            batch.add(LlamaToken(0), p as i32, &[0], true).ok()?;
        }
        let t = Instant::now();
        let decoded = ctx.decode(batch);
        ctx.synchronize();
        let took = t.elapsed().as_secs_f64();
        ctx.clear_kv_cache_seq(Some(0), None, None).ok()?;
        decoded.ok().map(|()| took)
    };
    time(FREE_ROWS)?;
    let mut best =
        |rows| -> Option<f64> { (0..3).try_fold(f64::INFINITY, |b, _| Some(b.min(time(rows)?))) };
    let one = best(1)?;
    let many = best(FREE_ROWS)?;
    Some(StepCost::fit(one, FREE_ROWS, many))
}

/// Prompt rows after which no further prompt joins a step. A step costs
/// `fixed + per_row * rows`: filling prompts one group at a time lets the
/// first requests start generating while later prompts are computed, and
/// costs one `fixed` per extra step; groups of at least `4 * fixed /
/// per_row` rows keep that under a fifth of the step. On 2 CPU cores
/// (SmolLM2: ~5 ms fixed, ~3 ms a row, prompts at ~340 rows/s whatever the
/// batch) that is one short prompt per step; where extra rows are nearly
/// free (a GPU) every waiting prompt goes in one batch, as before.
pub(crate) fn prefill_rows(cost: Option<StepCost>, n_batch: usize) -> usize {
    match cost {
        Some(c) if c.per_row > 0.0 => {
            ((4.0 * c.fixed / c.per_row).ceil() as usize).clamp(16, n_batch)
        }
        _ => n_batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_grouped_by_what_a_step_costs() {
        let cpu = StepCost::fit(8.0, 8, 29.0); // ~5 ms fixed, 3 ms a row
        assert_eq!(prefill_rows(Some(cpu), 512), 16, "one short prompt a step");
        let gpu = StepCost::fit(5.0, 8, 5.07); // rows nearly free
        assert_eq!(prefill_rows(Some(gpu), 512), 512, "every prompt at once");
        assert_eq!(prefill_rows(None, 512), 512, "no probe: as before");
        let flat = StepCost::fit(5.0, 8, 4.0); // no measurable row cost
        assert_eq!(prefill_rows(Some(flat), 256), 256);
    }
}
