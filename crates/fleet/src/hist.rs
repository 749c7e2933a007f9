//! Mergeable histograms with fixed log-spaced buckets, for telemetry
//! aggregates (latencies in ms, speeds in tok/s).
//!
//! Bucket `i` (1..=[`BUCKETS`]) holds values in
//! `[2^((i-1)/8 + MIN_EXP), 2^(i/8 + MIN_EXP))`: eight buckets per doubling,
//! so a bucket's upper bound is at most 9.1 % above its lower bound. Bucket
//! 0 holds zero and everything below `2^MIN_EXP`; the last bucket
//! everything above the range. Because the buckets are the same for every
//! histogram, merging is adding counts, and a percentile is exact to the
//! bucket: the returned bucket holds the true order statistic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two.
const PER_DOUBLING: f64 = 8.0;
/// 2^-10 ≈ 0.001: the smallest value told apart from zero.
const MIN_EXP: i32 = -10;
/// 2^30 ≈ 1e9: the largest value told apart.
const MAX_EXP: i32 = 30;
/// Buckets above zero.
pub const BUCKETS: u16 = ((MAX_EXP - MIN_EXP) * 8) as u16;

/// The bucket of `v` (NaN and negatives count as zero).
pub fn bucket_of(v: f64) -> u16 {
    if v.is_nan() || v < 2f64.powi(MIN_EXP) {
        return 0;
    }
    let i = ((v.log2() - f64::from(MIN_EXP)) * PER_DOUBLING).floor() + 1.0;
    if i >= f64::from(BUCKETS) {
        BUCKETS
    } else {
        // floor() of a value in [1, BUCKETS): fits.
        i as u16
    }
}

/// The values bucket `b` holds: `[lo, hi)`.
pub fn bounds(b: u16) -> (f64, f64) {
    if b == 0 {
        return (0.0, 2f64.powi(MIN_EXP));
    }
    let at = |i: u16| 2f64.powf(f64::from(i) / PER_DOUBLING + f64::from(MIN_EXP));
    if b >= BUCKETS {
        return (at(BUCKETS - 1), f64::INFINITY);
    }
    (at(b - 1), at(b))
}

/// Counts per bucket (sparse: only buckets that were hit). In JSON a map
/// of bucket numbers (as strings, JSON's keys) to counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = BTreeMap<String, u64>)]
pub struct Histogram(BTreeMap<u16, u64>);

/// Keys read as strings and parsed, so a histogram also reads back inside
/// a `#[serde(flatten)]` struct (`CohortView`), where serde hands map keys
/// over as strings.
impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, u64>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, n)| {
                k.parse::<u16>()
                    .ok()
                    .filter(|&b| b <= BUCKETS)
                    .map(|b| (b, n))
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "histogram bucket {k:?} is not a bucket number 0-{BUCKETS}"
                        ))
                    })
            })
            .collect::<Result<_, _>>()
            .map(Histogram)
    }
}

impl Histogram {
    pub fn record(&mut self, v: f64) {
        *self.0.entry(bucket_of(v)).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (&b, &n) in &other.0 {
            *self.0.entry(b).or_insert(0) += n;
        }
    }

    /// (bucket, count) of every bucket hit, in bucket order.
    pub fn buckets(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.0.iter().map(|(&b, &c)| (b, c))
    }

    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The bucket holding the `q` quantile (nearest rank: the value at
    /// 1-based rank `ceil(q·n)` of the sorted values), `None` when empty.
    pub fn quantile_bucket(&self, q: f64) -> Option<u16> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (&b, &c) in &self.0 {
            seen += c;
            if seen >= rank {
                return Some(b);
            }
        }
        self.0.keys().next_back().copied()
    }

    /// The `q` quantile as its bucket's geometric middle (within 4.4 % of
    /// the true value inside the range), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantile_bucket(q).map(|b| match bounds(b) {
            (0.0, _) => 0.0,
            (lo, hi) if hi.is_infinite() => lo,
            (lo, hi) => (lo * hi).sqrt(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn percentiles_hold_the_true_order_statistic(
            values in proptest::collection::vec(0.0f64..100_000.0, 1..400),
            split in 0usize..400,
        ) {
            // Built in two halves and merged, to test merging too.
            let split = split.min(values.len());
            let (mut a, mut b) = (Histogram::default(), Histogram::default());
            values[..split].iter().for_each(|&v| a.record(v));
            values[split..].iter().for_each(|&v| b.record(v));
            a.merge(&b);
            prop_assert_eq!(a.count(), values.len() as u64);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.5, 0.95, 0.99, 1.0] {
                let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
                let truth = sorted[rank - 1];
                let b = a.quantile_bucket(q).expect("not empty");
                prop_assert_eq!(b, bucket_of(truth));
                let (lo, hi) = bounds(b);
                prop_assert!((truth >= lo && truth < hi) || b == 0, "{} not in [{}, {})", truth, lo, hi);
            }
        }
    }

    #[test]
    fn json_round_trips_also_when_flattened() {
        let mut h = Histogram::default();
        [0.0, 1.0, 450.0, 1e12].iter().for_each(|&v| h.record(v));
        let text = serde_json::to_string(&h).expect("json");
        assert_eq!(serde_json::from_str::<Histogram>(&text).expect("back"), h);
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Outer {
            #[serde(flatten)]
            inner: Inner,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Inner {
            h: Histogram,
        }
        let o = Outer { inner: Inner { h } };
        let text = serde_json::to_string(&o).expect("json");
        assert_eq!(serde_json::from_str::<Outer>(&text).expect("flattened"), o);
        let e = serde_json::from_str::<Histogram>(r#"{"x": 1}"#).expect_err("bad key");
        assert!(e.to_string().contains("\"x\""), "{e}");
    }

    #[test]
    fn buckets_are_fine_and_cover_the_range() {
        for b in 1..BUCKETS {
            let (lo, hi) = bounds(b);
            assert!(hi / lo < 1.091, "bucket {b}: {lo}..{hi}");
            assert_eq!(bucket_of(lo * 1.000_001), b);
        }
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(-1.0), 0);
        assert_eq!(bucket_of(1e12), BUCKETS);
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
