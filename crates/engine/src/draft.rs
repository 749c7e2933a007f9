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
//! that follow, so the confirmation rate stays current for free. The
//! probe is one measurement on a shared machine (11.7 ms and 2.5 ms of
//! fixed cost were seen on the same build), so once serving the scheduler
//! times its steps by shape ([`StepTimes`]) and decides from those: a
//! shape where guesses lose stops being drafted, and shapes the probe
//! ruled out are tried now and then.

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

/// How many times a step shape must have been timed before its own
/// average counts (until then the start-up probe's [`StepCost`] decides).
const SETTLED: u32 = 3;
/// Every this many timed steps (of any width), one step of a width goes
/// against what is known:
/// without guesses while the plain step is untimed or stale, else with
/// them, so that every shape gets timed and timings follow the machine
/// (its speed drifts, and the probe can be wrong).
const EXPLORE_EVERY: u64 = 32;
/// A timing older than this many steps no longer counts.
const STALE: u64 = 4096;
/// Guesses must win by this much over not guessing: gains within timing
/// noise are not worth the risk of a loss.
const MARGIN: f64 = 1.03;

#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Moving average of a step's decode time, seconds.
    mean: f64,
    n: u32,
    /// The step count when it was last timed.
    at: u64,
}

/// What a step does about guesses, before its sequences decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Explore {
    /// Each sequence decides ([`StepTimes::pays`]).
    No,
    /// No guesses this step: it times the plain step.
    Without,
    /// Guesses wherever there are any: it times wider steps.
    With,
}

/// Decode times of generating steps as they happen, by shape (sequences
/// generating, guessed rows in the step): what a step costs on this model
/// and machine now, not what one probe at start said. Drafting decides
/// from these once a width's steps have been timed (a line through the
/// timed shapes estimates the others); the probe's fit only stands in
/// until then.
#[derive(Debug, Default)]
pub(crate) struct StepTimes {
    shapes: std::collections::HashMap<(usize, usize), Timing>,
    /// Timed steps, of every width.
    steps: u64,
    /// By width: the step of the last exploring step.
    explored: std::collections::HashMap<usize, u64>,
}

impl StepTimes {
    /// A generating step of `width` sequences and `guessed` extra rows
    /// (no prompt rows in it) took `secs` to decode.
    pub fn record(&mut self, width: usize, guessed: usize, secs: f64) {
        self.steps += 1;
        let at = self.steps;
        self.shapes
            .entry((width, guessed))
            .and_modify(|t| {
                t.mean = 0.8 * t.mean + 0.2 * secs;
                t.n += 1;
                t.at = at;
            })
            .or_insert(Timing {
                mean: secs,
                n: 1,
                at,
            });
    }

    fn settled(&self, width: usize, guessed: usize) -> Option<f64> {
        self.shapes
            .get(&(width, guessed))
            .filter(|t| t.n >= SETTLED && self.steps - t.at <= STALE)
            .map(|t| t.mean)
    }

    /// A shape's time: its own average, else the least-squares line
    /// through the width's timed shapes (two at least, the plain one
    /// among them).
    fn time(&self, width: usize, guessed: usize) -> Option<f64> {
        if let Some(t) = self.settled(width, guessed) {
            return Some(t);
        }
        let plain = self.settled(width, 0)?;
        let points: Vec<(f64, f64)> = (0..=FREE_ROWS)
            .filter_map(|g| self.settled(width, g).map(|t| (g as f64, t)))
            .collect();
        if points.len() < 2 {
            return None;
        }
        let n = points.len() as f64;
        let (mx, my) = points
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
        let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
        let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
        let slope = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
        Some((my + slope * (guessed as f64 - mx)).max(plain))
    }

    /// Called once per step of `width` generating sequences, before they
    /// decide: whether this step explores.
    pub fn explore(&mut self, width: usize) -> Explore {
        let steps = self.steps;
        let last = self.explored.entry(width).or_insert(0);
        if steps < *last + EXPLORE_EVERY {
            return Explore::No;
        }
        *last = steps;
        if self.settled(width, 0).is_none() {
            Explore::Without
        } else {
            Explore::With
        }
    }

    /// Whether a sequence guessing `k` more rows pays, in a step of `width`
    /// generating sequences that already holds `guessed` guessed rows
    /// expected to confirm `gain` tokens, for guesses confirmed at `rate`:
    /// the step's tokens per second with the guesses against without them,
    /// from the timings; from the probe's `fit` until the width is timed.
    pub fn pays(
        &self,
        fit: &StepCost,
        rate: f64,
        width: usize,
        guessed: usize,
        gain: f64,
        k: usize,
    ) -> bool {
        let (w, expect) = (width.max(1) as f64, rate * k as f64);
        match (self.time(width, guessed), self.time(width, guessed + k)) {
            (Some(without), Some(with)) => {
                (w + gain + expect) / with > MARGIN * (w + gain) / without
            }
            _ => fit.pays(rate, width, k),
        }
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

    #[test]
    fn measured_step_times_overrule_the_probe() {
        // The probe says extra rows are nearly free (reads-bound) ...
        let fit = StepCost::fit(12.7, 8, 13.0);
        let mut t = StepTimes::default();
        assert!(
            t.pays(&fit, 0.99, 4, 0, 0.0, 8),
            "untimed: the probe decides"
        );
        assert!(t.pays(&fit, 0.5, 1, 0, 0.0, 4));
        // ... but at 4 sequences a step with 4 guessed rows is measured at
        // 1.5 times one without: guesses confirmed half the time lose,
        // (4 + 2) / 15 < 1.03 * 4 / 10.
        for _ in 0..SETTLED {
            t.record(4, 0, 0.010);
            t.record(4, 4, 0.015);
        }
        assert!(!t.pays(&fit, 0.5, 4, 0, 0.0, 4));
        // Guesses almost always confirmed win: (4 + 3.96) / 15 > 4.12 / 10.
        assert!(t.pays(&fit, 0.99, 4, 0, 0.0, 4));
        // Untimed shapes of a timed width come from the line: 2 rows at
        // 12.5 ms, so 2 guesses at 50 % lose too.
        assert!(!t.pays(&fit, 0.5, 4, 0, 0.0, 2));
        // A gain within the margin is not taken: (4 + 0.1) / 10.1 vs 4 / 10.
        let mut near = StepTimes::default();
        for _ in 0..SETTLED {
            near.record(4, 0, 0.010);
            near.record(4, 1, 0.0101);
        }
        assert!(!near.pays(&fit, 0.1, 4, 0, 0.0, 1));
        assert!(near.pays(&fit, 0.9, 4, 0, 0.0, 1));
    }

    #[test]
    fn steps_explore_now_and_then_so_every_shape_gets_timed() {
        let mut t = StepTimes::default();
        let mut seen = Vec::new();
        for _ in 0..=(4 * EXPLORE_EVERY) {
            let e = t.explore(1);
            if e != Explore::No {
                seen.push(e);
            }
            // Plain steps are timed only when not drafting (here: when told).
            match e {
                Explore::Without => t.record(1, 0, 0.006),
                _ => t.record(1, 4, 0.007),
            }
        }
        assert_eq!(
            seen.len(),
            4,
            "one exploring step per {EXPLORE_EVERY}: {seen:?}"
        );
        // Untimed plain steps are timed first, then the guessing ones.
        assert_eq!(&seen[..3], &[Explore::Without; 3]);
        assert_eq!(seen[3], Explore::With);
        // Found cheap, guesses at 50 % pay though the probe said no.
        let arith = StepCost::fit(6.1, 8, 41.8);
        assert!(!arith.pays(0.5, 1, 4));
        assert!(t.pays(&arith, 0.5, 1, 0, 0.0, 4));
        assert!(
            !t.pays(&arith, 0.0, 1, 0, 0.0, 4),
            "never-confirmed guesses never pay"
        );
    }
}
