//! Statistics the fleet's decisions rest on (pure maths, no I/O): the
//! one-sided z-tests the automatic halt uses to call a cohort's rate worse
//! than its baseline's — two proportions for what happens at most once
//! per request (errors, feedback), two Poisson rates for what can happen
//! more often than requests (crashes) — and the always-valid confidence
//! interval the experiments report ([`always_valid_interval`]).

/// z of "rate `x_c / n_c` is above rate `x_b / n_b`" under the pooled null
/// hypothesis that both are equal; 0 when there is nothing to compare (no
/// trials, or no successes on either side).
pub fn two_proportion_z(x_c: u64, n_c: u64, x_b: u64, n_b: u64) -> f64 {
    if n_c == 0 || n_b == 0 {
        return 0.0;
    }
    let (nc, nb) = (n_c as f64, n_b as f64);
    let pooled = (x_c + x_b) as f64 / (nc + nb);
    let var = pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nb);
    if var <= 0.0 {
        return 0.0;
    }
    (x_c as f64 / nc - x_b as f64 / nb) / var.sqrt()
}

/// z of "`x_c` events over `n_c` requests is a higher rate than `x_b`
/// over `n_b`", counts taken as Poisson with the requests as exposure
/// (for events that may outnumber requests, such as crashes); 0 when there
/// is nothing to compare.
pub fn two_rate_z(x_c: u64, n_c: u64, x_b: u64, n_b: u64) -> f64 {
    if n_c == 0 || n_b == 0 || x_c + x_b == 0 {
        return 0.0;
    }
    let (nc, nb) = (n_c as f64, n_b as f64);
    let pooled = (x_c + x_b) as f64 / (nc + nb);
    (x_c as f64 / nc - x_b as f64 / nb) / (pooled * (1.0 / nc + 1.0 / nb)).sqrt()
}

/// An always-valid (anytime) two-sided confidence interval for a
/// difference of means `diff` whose estimator has variance `var`: the
/// normal-mixture sequential probability ratio test (mSPRT) of Johari,
/// Koomen, Pekelis and Walsh, "Always Valid Inference: Continuous
/// Monitoring of A/B Tests" (Operations Research, 2022), inverted. With a
/// N(0, `tau2`) mixture over the true difference, the chance that the
/// interval *ever* misses the true difference — however often it is
/// looked at, at whatever sample sizes — is at most `alpha`; a fixed-n
/// interval looked at repeatedly misses far more often (the tests below
/// measure both). The interval is narrowest relative to a fixed-n one near
/// `var ≈ tau2` and widens only logarithmically beyond. `None` when `var`
/// or `tau2` is not positive (nothing to judge yet).
pub fn always_valid_interval(diff: f64, var: f64, tau2: f64, alpha: f64) -> Option<(f64, f64)> {
    let usable = var > 0.0 && tau2 > 0.0 && alpha > 0.0 && alpha < 1.0 && diff.is_finite();
    if !usable {
        return None;
    }
    // Reject "difference = d" when the mixture likelihood ratio
    // sqrt(V / (V + t)) · exp(t (diff - d)² / (2 V (V + t))) reaches 1/α.
    let half =
        (var * (var + tau2) / tau2 * (2.0 * (1.0 / alpha).ln() + ((var + tau2) / var).ln())).sqrt();
    Some((diff - half, diff + half))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_edges() {
        // 60/1000 vs 30/1000: p = 0.045, se = sqrt(p(1-p) * 2/1000).
        let z = two_proportion_z(60, 1000, 30, 1000);
        let se = (0.045f64 * 0.955 * 0.002).sqrt();
        assert!((z - 0.03 / se).abs() < 1e-12, "{z}");
        assert!((z - 3.2359).abs() < 1e-3, "{z}");
        assert!(two_proportion_z(30, 1000, 60, 1000) < 0.0);
        assert_eq!(two_proportion_z(0, 1000, 0, 1000), 0.0);
        assert_eq!(two_proportion_z(5, 0, 1, 10), 0.0);
        assert_eq!(two_proportion_z(10, 10, 10, 10), 0.0);
        // Crashes may outnumber requests: the Poisson test still ranks a
        // worse crash loop as more significant.
        let (loop_190, loop_250) = (two_rate_z(190, 100, 0, 100), two_rate_z(250, 100, 0, 100));
        assert!(
            loop_190 > 10.0 && loop_250 > loop_190,
            "{loop_190} {loop_250}"
        );
        // 8 vs 2 per 1 000: pooled 0.005, se sqrt(0.005 * 0.002).
        let z = two_rate_z(8, 1000, 2, 1000);
        assert!((z - 0.006 / (0.005f64 * 0.002).sqrt()).abs() < 1e-12, "{z}");
        assert_eq!(two_rate_z(0, 10, 0, 10), 0.0);
    }

    /// Under the null (both cohorts drawn at the same rate), z ≥ 3.5 is
    /// rare: checked over 4000 simulated pairs of cohorts.
    #[test]
    fn false_alarms_under_equal_rates_are_rare() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut uniform = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let (n, rate) = (500u64, 0.05);
        let mut alarms = 0;
        let mut above_1645 = 0;
        for _ in 0..4000 {
            let mut draw = || (0..n).filter(|_| uniform() < rate).count() as u64;
            let (c, b) = (draw(), draw());
            let z = two_proportion_z(c, n, b, n);
            alarms += usize::from(z >= 3.5);
            above_1645 += usize::from(z >= 1.645);
        }
        assert!(alarms <= 4, "{alarms} alarms in 4000 equal pairs");
        // And the test is not simply blind: about 5 % pass z 1.645.
        assert!((120..=300).contains(&above_1645), "{above_1645}");
    }

    fn xorshift(seed: u64) -> impl FnMut() -> f64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The interval of a difference of two proportions after `n` trials a
    /// side, with the mixture variance matched to 1 000 trials a side (as
    /// the experiments choose it).
    fn interval(xt: u64, xc: u64, n: u64, alpha: f64) -> Option<(f64, f64)> {
        let (pt, pc) = (xt as f64 / n as f64, xc as f64 / n as f64);
        let var = pt * (1.0 - pt) / n as f64 + pc * (1.0 - pc) / n as f64;
        let pooled = (pt + pc) / 2.0;
        let tau2 = pooled * (1.0 - pooled) * 2.0 / 1000.0;
        always_valid_interval(pt - pc, var, tau2, alpha)
    }

    /// An A/A experiment watched continuously: two arms at the same 3 %
    /// rate, the interval looked at after every 250 trials a side up to
    /// 20 000 (80 looks). Over 1 000 such runs the always-valid interval
    /// ever excludes 0 in at most α = 5 % of them; the fixed-n 95 %
    /// interval, looked at as often, in several times more. And it is not
    /// blind: a doubled rate (3 % → 6 %) is caught in almost every run.
    #[test]
    fn always_valid_interval_keeps_its_error_rate_under_peeking() {
        let mut u = xorshift(0x9e37_79b9_7f4a_7c15);
        let (runs, step, looks, p) = (1000, 250u64, 80, 0.03);
        let (mut av_false, mut naive_false, mut caught) = (0, 0, 0);
        for _ in 0..runs {
            let (mut xa, mut xb, mut xd) = (0u64, 0u64, 0u64);
            let (mut av_hit, mut naive_hit, mut found) = (false, false, false);
            for look in 1..=looks {
                for _ in 0..step {
                    xa += u64::from(u() < p);
                    xb += u64::from(u() < p);
                    xd += u64::from(u() < 2.0 * p);
                }
                let n = look * step;
                if let Some((lo, hi)) = interval(xa, xb, n, 0.05) {
                    av_hit |= lo > 0.0 || hi < 0.0;
                }
                if let Some((lo, _)) = interval(xd, xb, n, 0.05) {
                    found |= lo > 0.0;
                }
                let (pa, pb) = (xa as f64 / n as f64, xb as f64 / n as f64);
                let se = ((pa * (1.0 - pa) + pb * (1.0 - pb)) / n as f64).sqrt();
                naive_hit |= se > 0.0 && ((pa - pb) / se).abs() > 1.96;
            }
            av_false += usize::from(av_hit);
            naive_false += usize::from(naive_hit);
            caught += usize::from(found);
        }
        eprintln!("A/A runs called different: always-valid {av_false}/{runs}, fixed-n peeking {naive_false}/{runs}; doubled rate caught {caught}/{runs}");
        assert!(
            av_false <= runs / 20,
            "always-valid: {av_false} of {runs} A/A runs called different"
        );
        assert!(
            naive_false >= 3 * runs / 20,
            "fixed-n peeking: only {naive_false} of {runs}"
        );
        assert!(
            caught >= runs * 95 / 100,
            "doubled rate caught in {caught} of {runs}"
        );
    }

    #[test]
    fn always_valid_interval_edges() {
        assert_eq!(always_valid_interval(0.1, 0.0, 1.0, 0.05), None);
        assert_eq!(always_valid_interval(0.1, 1.0, 0.0, 0.05), None);
        assert_eq!(always_valid_interval(f64::NAN, 1.0, 1.0, 0.05), None);
        // Symmetric around the estimate, wider than the fixed-n 95 % one.
        let (lo, hi) = always_valid_interval(0.5, 0.01, 0.01, 0.05).expect("interval");
        assert!((0.5 - lo - (hi - 0.5)).abs() < 1e-12);
        assert!(hi - 0.5 > 1.96 * 0.1, "{lo}..{hi}");
        // At var = tau2: sqrt(V · 2 · (2 ln 20 + ln 2)).
        let want = (0.01f64 * 2.0 * (2.0 * 20f64.ln() + 2f64.ln())).sqrt();
        assert!((hi - 0.5 - want).abs() < 1e-12, "{hi}");
    }
}
