//! What the router learns from the requests it routed: the cloud's health
//! (a circuit breaker) and speed (a rolling estimate), the local model's
//! measured speed, and the cloud spend. Small mutex-guarded numbers, read
//! once per request to fill the decision's signals.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::policy::{BreakerConfig, CloudConfig, LocalConfig};

/// Weight of the newest sample in the moving averages.
const ALPHA: f64 = 0.3;

fn ewma(old: f64, sample: f64) -> f64 {
    old + ALPHA * (sample - old)
}

/// Opens after `failures` consecutive cloud failures; after `cooldown` it
/// is half-open: requests may try the cloud again, the first success
/// closes it, a failure opens it again at once. Reading it changes
/// nothing, so a request that ends up local cannot hold a trial slot.
#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    consecutive: u32,
    /// Set once opened; stays set (half-open) until a success.
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Breaker {
            cfg,
            state: Mutex::new(BreakerState::default()),
        }
    }

    /// True while the cloud must not be tried (within the cooldown).
    pub fn is_open(&self, now: Instant) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| s.open_until.is_some_and(|t| now < t))
    }

    pub fn success(&self) {
        if let Ok(mut s) = self.state.lock() {
            *s = BreakerState::default();
        }
    }

    pub fn failure(&self, now: Instant) {
        if let Ok(mut s) = self.state.lock() {
            s.consecutive += 1;
            if s.consecutive >= self.cfg.failures || s.open_until.is_some() {
                s.open_until = Some(now + Duration::from_millis(self.cfg.cooldown_ms));
            }
        }
    }
}

/// Rolling estimates of both sides' speed.
#[derive(Debug)]
pub struct Speeds {
    fixed_prefill: Option<f64>,
    fixed_decode: Option<f64>,
    inner: Mutex<SpeedState>,
}

#[derive(Debug, Clone, Copy)]
struct SpeedState {
    local_prefill_tok_s: f64,
    local_decode_tok_s: f64,
    cloud_first_ms: f64,
    cloud_ms_per_token: f64,
}

impl Speeds {
    /// Local priors: the reference speeds of SmolLM2-135M on 2 cores
    /// (reference-facts.md), until the first measurement.
    pub fn new(local: &LocalConfig, cloud: &CloudConfig) -> Self {
        Speeds {
            fixed_prefill: local.prefill_tok_s,
            fixed_decode: local.decode_tok_s,
            inner: Mutex::new(SpeedState {
                local_prefill_tok_s: local.prefill_tok_s.unwrap_or(400.0),
                local_decode_tok_s: local.decode_tok_s.unwrap_or(100.0),
                cloud_first_ms: cloud.expected_first_token_ms,
                cloud_ms_per_token: cloud.expected_ms_per_token,
            }),
        }
    }

    fn get(&self) -> SpeedState {
        match self.inner.lock() {
            Ok(s) => *s,
            Err(p) => *p.into_inner(),
        }
    }

    /// Predicted local time: prompt at prefill speed, the answer at decode
    /// speed, stretched by the requests already queued per slot.
    pub fn local_ms(&self, prompt_tokens: u32, answer_tokens: u32, queued_per_slot: f64) -> f64 {
        let s = self.get();
        let one = 1000.0
            * (prompt_tokens as f64 / s.local_prefill_tok_s
                + answer_tokens as f64 / s.local_decode_tok_s);
        one * (1.0 + queued_per_slot.max(0.0))
    }

    /// Predicted cloud time from the rolling estimate.
    pub fn cloud_ms(&self, answer_tokens: u32) -> f64 {
        let s = self.get();
        s.cloud_first_ms + answer_tokens as f64 * s.cloud_ms_per_token
    }

    /// A finished local request (engine timings); ignored for speeds the
    /// policy fixed.
    pub fn local_sample(&self, prompt_tokens: usize, prompt_ms: f64, tokens: usize, gen_ms: f64) {
        let Ok(mut s) = self.inner.lock() else { return };
        if self.fixed_prefill.is_none() && prompt_tokens >= 8 && prompt_ms > 0.0 {
            s.local_prefill_tok_s = ewma(
                s.local_prefill_tok_s,
                prompt_tokens as f64 * 1000.0 / prompt_ms,
            );
        }
        if self.fixed_decode.is_none() && tokens >= 2 && gen_ms > 0.0 {
            s.local_decode_tok_s = ewma(s.local_decode_tok_s, tokens as f64 * 1000.0 / gen_ms);
        }
    }

    /// A finished cloud request: time to the first byte of the answer, the
    /// whole time, and the tokens generated (None: unknown).
    pub fn cloud_sample(&self, first_ms: f64, total_ms: f64, tokens: Option<usize>) {
        let Ok(mut s) = self.inner.lock() else { return };
        s.cloud_first_ms = ewma(s.cloud_first_ms, first_ms);
        if let Some(n) = tokens.filter(|&n| n > 0) {
            let per = ((total_ms - first_ms).max(0.0)) / n as f64;
            s.cloud_ms_per_token = ewma(s.cloud_ms_per_token, per);
        }
    }

    /// (local prefill tok/s, local decode tok/s, cloud first ms, cloud ms/token).
    pub fn snapshot(&self) -> (f64, f64, f64, f64) {
        let s = self.get();
        (
            s.local_prefill_tok_s,
            s.local_decode_tok_s,
            s.cloud_first_ms,
            s.cloud_ms_per_token,
        )
    }
}

/// Cloud spend, counted from the usage the cloud reports.
#[derive(Debug)]
pub struct Spend {
    cap_usd: Option<f64>,
    usd_per_1k: f64,
    spent: Mutex<f64>,
}

impl Spend {
    pub fn new(cap_usd: Option<f64>, usd_per_1k: f64) -> Self {
        Spend {
            cap_usd,
            usd_per_1k,
            spent: Mutex::new(0.0),
        }
    }

    pub fn add_tokens(&self, tokens: usize) {
        if let Ok(mut s) = self.spent.lock() {
            *s += tokens as f64 / 1000.0 * self.usd_per_1k;
        }
    }

    pub fn spent(&self) -> f64 {
        self.spent.lock().map_or(0.0, |s| *s)
    }

    pub fn exhausted(&self) -> bool {
        self.cap_usd.is_some_and(|cap| self.spent() >= cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let b = Breaker::new(BreakerConfig {
            failures: 2,
            cooldown_ms: 1000,
        });
        let t0 = Instant::now();
        b.failure(t0);
        assert!(!b.is_open(t0));
        b.failure(t0);
        assert!(b.is_open(t0 + Duration::from_millis(500)));
        let later = t0 + Duration::from_millis(1500);
        assert!(!b.is_open(later), "half-open: requests may try");
        assert!(!b.is_open(later), "reading it changes nothing");
        b.failure(later);
        assert!(
            b.is_open(later + Duration::from_millis(10)),
            "one failure while half-open reopens it"
        );
        let again = later + Duration::from_millis(2000);
        assert!(!b.is_open(again));
        b.success();
        assert!(!b.is_open(again) && !b.is_open(again));
    }

    #[test]
    fn speeds_learn_unless_fixed() {
        let s = Speeds::new(&LocalConfig::default(), &CloudConfig::default());
        let before = s.local_ms(100, 100, 0.0);
        s.local_sample(100, 1000.0, 100, 10_000.0);
        assert!(s.local_ms(100, 100, 0.0) > before);
        assert!((s.local_ms(100, 100, 1.0) / s.local_ms(100, 100, 0.0) - 2.0).abs() < 1e-9);
        let fixed = Speeds::new(
            &LocalConfig {
                prefill_tok_s: Some(1.0),
                decode_tok_s: Some(1.0),
            },
            &CloudConfig::default(),
        );
        fixed.local_sample(100, 1.0, 100, 1.0);
        assert_eq!(fixed.local_ms(10, 10, 0.0), 20_000.0);
        let c = fixed.cloud_ms(10);
        fixed.cloud_sample(100.0, 1100.0, Some(10));
        assert!(fixed.cloud_ms(10) != c);
        let sp = Spend::new(Some(0.01), 1.0);
        sp.add_tokens(5);
        assert!(!sp.exhausted());
        sp.add_tokens(5);
        assert!(sp.exhausted());
    }
}
