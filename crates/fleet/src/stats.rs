//! Statistics the fleet's decisions rest on (pure maths, no I/O): the
//! one-sided z-tests the automatic halt uses to call a cohort's rate worse
//! than its baseline's — two proportions for what happens at most once
//! per request (errors, feedback), two Poisson rates for what can happen
//! more often than requests (crashes).

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
}
