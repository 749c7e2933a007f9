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
//! A guess pays only where an extra row in a step costs much less than a
//! step of its own, and how much less depends on the model and the
//! machine. On 2 AVX2 cores, SmolLM2 Q4_1 (49k vocabulary) is bound by
//! arithmetic: a step of 1 row took 6.1 ms, 2 rows 12.2 ms and 9 rows
//! 47 ms, so guesses lose unless ~85 % are confirmed (the parallel bench
//! confirmed 68-72 % and lost 7 % at 1 sequence, 15 % at 4). Gemma 3 270M
//! (262k vocabulary) reads its large output matrix once per step: 79 rows/s
//! one at a time but 126 rows/s four at a time, and drafting gained 55 %
//! for one sequence. So the scheduler measures a [`StepCost`] when it
//! starts and drafts for real only while a sequence's guesses are
//! confirmed often enough to pay at the current step width
//! ([`StepCost::pays`]); otherwise it keeps guessing in the
//! [`Shadow`]: the guess is never decoded, only checked against the tokens
//! that follow, so the confirmation rate stays current for free.

/// Longest draft per step.
pub const MAX_DRAFT: usize = 8;
/// Most rows a step may hold with drafts in it. The wider the step, the
/// more a rejected guess costs (arithmetic, not weight reads, dominates a
/// wide step); unbounded drafting lost 20-25 % at 4 and 16 sequences on
/// SmolLM2 with 2 threads.
pub const FREE_ROWS: usize = 8;
/// With a zero budget, probe with one token every this many steps.
const PROBE_EVERY: u32 = 16;

/// Decode time of a step of `rows` rows (each with logits), fitted as
/// `fixed + per_row * rows` from a 1-row and a [`FREE_ROWS`]-row step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StepCost {
    pub fixed: f64,
    pub per_row: f64,
}

impl StepCost {
    /// The fit through a step of 1 row taking `one` and a step of `rows`
    /// rows taking `many` (any unit), never negative.
    pub fn fit(one: f64, rows: usize, many: f64) -> StepCost {
        let per_row = ((many - one) / (rows.max(2) - 1) as f64).max(0.0);
        StepCost {
            fixed: (one - per_row).max(0.0),
            per_row,
        }
    }

    /// Whether `k` guessed rows pay in a step whose `rows` rows each make a
    /// token, for guesses confirmed at `rate` (0-1): the tokens they are
    /// expected to confirm, at the step's average cost per token, are worth
    /// more than the rows cost. With other sequences in the step the rows
    /// cost a whole extra pass too: with a KV cache per sequence, llama.cpp
    /// splits a batch into passes with equally many rows of each sequence,
    /// so one sequence's extra rows run as a pass of their own.
    pub fn pays(&self, rate: f64, rows: usize, k: usize) -> bool {
        let (n, k) = (rows.max(1) as f64, k as f64);
        let extra_pass = if rows > 1 { self.fixed } else { 0.0 };
        rate * k * (self.fixed + self.per_row * n) / n > self.per_row * k + extra_pass
    }
}

/// A guess that was not decoded, checked against the tokens sampled after
/// it: what drafting it would have confirmed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shadow {
    guess: Vec<i32>,
    matched: usize,
}

impl Shadow {
    pub fn is_pending(&self) -> bool {
        !self.guess.is_empty()
    }

    pub fn start(&mut self, guess: &[i32]) {
        self.guess = guess.to_vec();
        self.matched = 0;
    }

    pub fn clear(&mut self) {
        self.guess.clear();
        self.matched = 0;
    }

    /// The next sampled token. Once the guess is settled (a token differs,
    /// or all matched): `(guessed, confirmed)`.
    pub fn next(&mut self, token: i32) -> Option<(usize, usize)> {
        if self.guess.is_empty() {
            return None;
        }
        if self.guess[self.matched] == token {
            self.matched += 1;
            if self.matched < self.guess.len() {
                return None;
            }
        }
        let settled = (self.guess.len(), self.matched);
        self.clear();
        Some(settled)
    }
}

/// A sequence's drafting budget.
#[derive(Debug, Clone)]
pub(crate) struct DraftBudget {
    k: usize,
    idle: u32,
    max: usize,
    /// Moving average of the share of guessed tokens confirmed.
    rate: f64,
}

impl DraftBudget {
    pub fn new(max: usize) -> DraftBudget {
        DraftBudget {
            k: 4.min(max),
            idle: 0,
            max,
            rate: 0.5,
        }
    }

    /// The share of guessed tokens confirmed lately (0-1).
    pub fn rate(&self) -> f64 {
        self.rate
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
        self.rate = 0.7 * self.rate + 0.3 * accepted as f64 / proposed as f64;
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

    #[test]
    fn the_rate_follows_what_guesses_confirm() {
        let mut b = DraftBudget::new(MAX_DRAFT);
        for _ in 0..20 {
            b.update(4, 4);
        }
        assert!(b.rate() > 0.99, "{}", b.rate());
        for _ in 0..20 {
            b.update(4, 1);
        }
        assert!((b.rate() - 0.25).abs() < 0.01, "{}", b.rate());
    }

    #[test]
    fn a_shadow_guess_settles_on_the_first_difference_or_in_full() {
        let mut s = Shadow::default();
        assert_eq!(s.next(7), None, "nothing pending");
        s.start(&[1, 2, 3]);
        assert!(s.is_pending());
        assert_eq!(s.next(1), None);
        assert_eq!(s.next(9), Some((3, 1)));
        assert!(!s.is_pending());
        s.start(&[4, 5]);
        assert_eq!(s.next(4), None);
        assert_eq!(s.next(5), Some((2, 2)));
    }

    #[test]
    fn step_costs_decide_where_guesses_pay() {
        // Bound by arithmetic (SmolLM2 on 2 cores): 6.1 ms, 8 rows 41.8 ms.
        let arith = StepCost::fit(6.1, 8, 41.8);
        assert!((arith.per_row - 5.1).abs() < 1e-9 && (arith.fixed - 1.0).abs() < 1e-9);
        assert!(!arith.pays(0.7, 1, 4), "70 % confirmed does not pay");
        assert!(arith.pays(0.9, 1, 4), "90 % does");
        assert!(!arith.pays(0.99, 4, 4), "but not beside 3 other sequences");
        // Bound by reading the weights: extra rows are nearly free, but
        // beside other sequences they cost an extra pass.
        let reads = StepCost::fit(12.7, 8, 20.0);
        assert!(reads.pays(0.3, 1, 4));
        assert!(!reads.pays(0.3, 4, 1) && reads.pays(0.9, 4, 8));
        assert!(!reads.pays(0.0, 1, 4), "never-confirmed guesses never pay");
        // A wider step measured faster than a narrow one: free rows.
        assert_eq!(StepCost::fit(10.0, 8, 9.0).per_row, 0.0);
        assert!(StepCost::fit(10.0, 8, 9.0).pays(0.01, 1, 1));
    }
}
