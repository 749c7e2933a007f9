//! The experiment maths on simulated arms: a worse class is caught and
//! named, a faster treatment ships, and identical arms watched after every
//! look are almost never called different.

use std::collections::BTreeMap;

use super::*;

fn spec(metrics: &[Metric]) -> ExperimentSpec {
    ExperimentSpec {
        control: "v1".into(),
        metrics: metrics.to_vec(),
        alpha: 0.05,
        result: None,
    }
}

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One arm's class: `n` requests at these rates and speeds (±33 % around
/// the medians, as the simulator draws them).
#[derive(Clone, Copy)]
struct Arm {
    thumbs_down: f64,
    regenerate: f64,
    error: f64,
    latency_ms: f64,
    tok_s: f64,
}

const BASE: Arm = Arm {
    thumbs_down: 0.02,
    regenerate: 0.01,
    error: 0.005,
    latency_ms: 450.0,
    tok_s: 45.0,
};

fn add(a: &mut Agg, arm: Arm, n: u64, rng: &mut Rng) {
    for _ in 0..n {
        a.inferences += 1;
        a.events += 1;
        if rng.uniform() < arm.error {
            a.errors += 1;
        } else {
            let spread = 0.67 + 0.66 * rng.uniform();
            a.ttft_ms.record(arm.latency_ms * 0.1 * spread);
            a.latency_ms.record(arm.latency_ms * spread);
            a.tok_s.record(arm.tok_s / spread);
        }
        a.thumbs_down += u64::from(rng.uniform() < arm.thumbs_down);
        a.regenerates += u64::from(rng.uniform() < arm.regenerate);
    }
}

const ALL5: [Metric; 5] = [
    Metric::TtftP50,
    Metric::TokS,
    Metric::ThumbsDownRate,
    Metric::RegenerateRate,
    Metric::CrashRate,
];

#[test]
fn a_class_that_likes_the_treatment_less_stops_it_and_is_named() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (mut c, mut t) = (BTreeMap::new(), BTreeMap::new());
    for class in ["phone-4gb", "phone-8gb"] {
        let worse = Arm {
            thumbs_down: 0.06,
            ..BASE
        };
        add(
            c.entry(class.to_string()).or_default(),
            BASE,
            8000,
            &mut rng,
        );
        let arm = if class == "phone-4gb" { worse } else { BASE };
        add(t.entry(class.to_string()).or_default(), arm, 8000, &mut rng);
    }
    let results = analyze(&spec(&ALL5), &c, &t);
    assert_eq!(results.len(), 10);
    let bad: Vec<_> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Worse)
        .collect();
    assert_eq!(bad.len(), 1, "{results:#?}");
    assert_eq!(
        (bad[0].device_class.as_str(), bad[0].metric),
        ("phone-4gb", Metric::ThumbsDownRate)
    );
    // The interval holds the true difference (+0.04) and excludes 0.
    let (lo, hi) = (bad[0].low.expect("low"), bad[0].high.expect("high"));
    assert!(lo > 0.0 && lo < 0.04 && hi > 0.04, "{lo}..{hi}");
    assert!((bad[0].level - 0.005).abs() < 1e-12, "α / 10 comparisons");
    let (d, why) = decide(&results, None);
    assert_eq!(d, Decision::Stop);
    assert!(why.contains("thumbs_down_rate worse in phone-4gb"), "{why}");
    // A halted rollout stops its experiment whatever the numbers say.
    let (d, why) = decide(&[], Some("auto-halt: class x"));
    assert_eq!(d, Decision::Stop);
    assert!(why.contains("halted: auto-halt"), "{why}");
}

#[test]
fn a_faster_treatment_ships_and_a_slower_one_stops() {
    let mut rng = Rng(7);
    let run = |arm: Arm, rng: &mut Rng| {
        let (mut c, mut t) = (BTreeMap::new(), BTreeMap::new());
        add(c.entry("laptop".into()).or_default(), BASE, 4000, rng);
        add(t.entry("laptop".into()).or_default(), arm, 4000, rng);
        analyze(&spec(&[Metric::TokS, Metric::LatencyP50]), &c, &t)
    };
    let fast = run(
        Arm {
            tok_s: 55.0,
            ..BASE
        },
        &mut rng,
    );
    let tok = &fast[0];
    assert_eq!((tok.metric, tok.verdict), (Metric::TokS, Verdict::Better));
    // Means from bucket middles: within the histogram's 4.4 %.
    assert!(
        (tok.treatment.value / tok.control.value - 55.0 / 45.0).abs() < 0.06,
        "{tok:?}"
    );
    assert!(
        tok.control
            .p50
            .is_some_and(|p| (p / 45.0 - 1.0).abs() < 0.1),
        "{tok:?}"
    );
    assert_eq!(fast[1].verdict, Verdict::Inconclusive, "{:?}", fast[1]);
    assert_eq!(decide(&fast, None).0, Decision::Ship);
    let slow = run(
        Arm {
            latency_ms: 600.0,
            ..BASE
        },
        &mut rng,
    );
    assert_eq!(slow[1].verdict, Verdict::Worse, "{:?}", slow[1]);
    assert_eq!(decide(&slow, None).0, Decision::Stop);
}

#[test]
fn too_little_data_is_not_judged() {
    let mut rng = Rng(3);
    let (mut c, mut t) = (BTreeMap::new(), BTreeMap::new());
    add(c.entry("a".into()).or_default(), BASE, 20, &mut rng);
    add(t.entry("a".into()).or_default(), BASE, 20, &mut rng);
    // A class only one arm has is not compared at all.
    add(c.entry("b".into()).or_default(), BASE, 500, &mut rng);
    let r = analyze(&spec(&[Metric::ThumbsDownRate, Metric::TokS]), &c, &t);
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.verdict == Verdict::NoData), "{r:?}");
    let (d, why) = decide(&r, None);
    assert_eq!(d, Decision::KeepRunning);
    assert!(why.contains("0 of 2"), "{why}");
    assert_eq!(decide(&[], None).0, Decision::KeepRunning);
}

/// Identical treatment, watched: 300 A/A experiments of two classes and
/// five metrics, analysed after each of 12 looks (every 400 requests a
/// side per class, up to 4 800). An experiment counts as a false call if
/// any look decides ship or stop. The always-valid intervals keep that
/// under α = 5 % overall; the same data judged by fixed-n 95 % intervals
/// at every look (the "peeking" mistake) calls far more of them.
#[test]
fn identical_treatments_are_not_declared_different_under_peeking() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let (runs, looks, step) = (300, 12, 400u64);
    let (mut false_calls, mut naive_calls) = (0, 0);
    for _ in 0..runs {
        let (mut c, mut t) = (BTreeMap::new(), BTreeMap::new());
        let (mut called, mut naive) = (false, false);
        for _ in 0..looks {
            for class in ["phone-4gb", "phone-8gb"] {
                add(
                    c.entry(class.to_string()).or_default(),
                    BASE,
                    step,
                    &mut rng,
                );
                add(
                    t.entry(class.to_string()).or_default(),
                    BASE,
                    step,
                    &mut rng,
                );
            }
            let results = analyze(&spec(&ALL5), &c, &t);
            called |= decide(&results, None).0 != Decision::KeepRunning;
            // Fixed-n 95 % on the rates, each comparison on its own.
            naive |= results.iter().any(|r| {
                let (nc, nt) = (r.control.n as f64, r.treatment.n as f64);
                let (pc, pt) = (r.control.value, r.treatment.value);
                let se = (pc * (1.0 - pc) / nc + pt * (1.0 - pt) / nt).sqrt();
                matches!(r.metric, Metric::ThumbsDownRate | Metric::RegenerateRate)
                    && se > 0.0
                    && (r.diff / se).abs() > 1.96
            });
        }
        false_calls += usize::from(called);
        naive_calls += usize::from(naive);
    }
    eprintln!("identical treatments declared different: {false_calls}/{runs} (fixed-n peeking: {naive_calls}/{runs})");
    assert!(
        false_calls <= runs * 5 / 100,
        "{false_calls} of {runs} identical treatments declared different"
    );
    assert!(
        naive_calls >= runs * 25 / 100,
        "peeking with fixed-n intervals called only {naive_calls} of {runs}"
    );
}

#[test]
fn metric_names_parse_and_unknown_ones_are_listed() {
    for m in Metric::ALL {
        assert_eq!(Metric::parse(m.as_str()), Ok(m));
    }
    let e = Metric::parse("ttft").expect_err("refused");
    assert!(e.contains("ttft_p50") && e.contains("crash_rate"), "{e}");
}
