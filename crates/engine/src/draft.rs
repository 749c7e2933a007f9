//! Prompt-lookup drafting for greedy sequences: guess the next tokens by
//! finding the latest earlier occurrence of the sequence's last few tokens
//! (prompt and generated text alike) and proposing what followed it. The
//! scheduler decodes the guesses in the same batch as the real next token;
//! each guess is used only if greedy sampling picks exactly it from the
//! logits before it, so the output is the same tokens as without drafting
//! (up to the float noise any change of batch shape brings). Repetitive
//! text (code edits, quoting, summaries, greedy loops) then yields several
//! tokens per step. A per-sequence budget grows on full acceptance and
//! shrinks on misses, down to an occasional probe, so text that never
//! repeats costs little; and drafts only fill a step up to [`FREE_ROWS`]
//! rows, so many concurrent sequences decode much as they would without
//! drafting.
//!
//! Drafting is off unless asked for (`SchedulerConfig::draft_max`): it pays
//! only where an extra row in a step costs much less than a step of its
//! own, i.e. where decoding one row is bound by reading the weights (GPUs,
//! many-core CPUs). On a 2-core AVX2 machine with SmolLM2 Q4_1 it is bound
//! by arithmetic instead: a step of 1 row took 6.1 ms, 2 rows 12.2 ms and
//! 9 rows 47 ms, so a guess pays only when more than ~85 % of guesses are
//! confirmed. There, on the parallel bench (128 greedy tokens per story
//! prompt, 68-72 % of guesses confirmed), drafting lost 7 % at 1 sequence
//! and 15 % at 4, and was even at 16.

/// Longest draft per step.
pub const MAX_DRAFT: usize = 8;
/// Most rows a step may hold with drafts in it. The wider the step, the
/// more a rejected guess costs (arithmetic, not weight reads, dominates a
/// wide step); unbounded drafting lost 20-25 % at 4 and 16 sequences on
/// SmolLM2 with 2 threads.
pub const FREE_ROWS: usize = 8;
/// With a zero budget, probe with one token every this many steps.
const PROBE_EVERY: u32 = 16;

/// A sequence's drafting budget.
#[derive(Debug, Clone)]
pub(crate) struct DraftBudget {
    k: usize,
    idle: u32,
    max: usize,
}

impl DraftBudget {
    pub fn new(max: usize) -> DraftBudget {
        DraftBudget {
            k: 4.min(max),
            idle: 0,
            max,
        }
    }

    /// How many tokens to draft now.
    pub fn now(&mut self) -> usize {
        if self.max == 0 {
            return 0;
        }
        if self.k > 0 {
            return self.k;
        }
        self.idle += 1;
        if self.idle >= PROBE_EVERY {
            self.idle = 0;
            1
        } else {
            0
        }
    }

    /// After a step that drafted `proposed` tokens and kept `accepted`.
    pub fn update(&mut self, proposed: usize, accepted: usize) {
        if proposed == 0 {
            return;
        }
        if accepted == proposed {
            self.k = (self.k.max(1) * 2).min(self.max);
        } else if accepted == 0 {
            self.k /= 2;
        } else {
            self.k = accepted.max(1);
        }
    }
}

/// Up to `k` tokens that followed the latest earlier occurrence of the
/// last 3 (else 2) tokens of `history`.
pub(crate) fn lookup(history: &[i32], k: usize) -> &[i32] {
    if k == 0 {
        return &[];
    }
    for n in [3usize, 2] {
        if history.len() <= n {
            continue;
        }
        let tail = &history[history.len() - n..];
        let found = (0..history.len() - n)
            .rev()
            .find(|&s| &history[s..s + n] == tail);
        if let Some(s) = found {
            let from = s + n;
            return &history[from..(from + k).min(history.len())];
        }
    }
    &[]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_proposes_what_followed_the_latest_match() {
        // ... 1 2 3 [4 5] ... 1 2 3 [6 7 8] ... 2 3 -> 6 7 8 (latest)
        let h = [1, 2, 3, 4, 5, 9, 1, 2, 3, 6, 7, 8, 0, 1, 2, 3];
        assert_eq!(lookup(&h, 3), &[6, 7, 8]);
        assert_eq!(lookup(&h, 1), &[6]);
        assert_eq!(lookup(&h, 0), &[] as &[i32]);
        // No 3-gram match: fall back to 2 tokens; nothing at all: empty.
        assert_eq!(lookup(&[5, 6, 1, 5, 6], 2), &[1, 5]);
        assert_eq!(lookup(&[1, 2, 3, 4], 4), &[] as &[i32]);
    }

    #[test]
    fn the_budget_grows_on_hits_and_falls_to_probes_on_misses() {
        let mut b = DraftBudget::new(MAX_DRAFT);
        assert_eq!(b.now(), 4);
        b.update(4, 4);
        assert_eq!(b.now(), 8);
        b.update(8, 3);
        assert_eq!(b.now(), 3);
        for _ in 0..4 {
            let k = b.now();
            b.update(k, 0);
        }
        assert_eq!(b.now(), 0);
        let probes = (0..64).filter(|_| b.now() == 1).count();
        assert_eq!(probes, 64 / PROBE_EVERY as usize);
        assert_eq!(DraftBudget::new(0).now(), 0, "drafting off");
    }
}
