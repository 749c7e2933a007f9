//! Rollouts: a release moving onto a channel in stages, who is in it
//! (targeting rules and sticky bucketing), and its state machine.
//!
//! Bucketing: `bucket(seed, device)` is the first 8 bytes of
//! SHA-256(`seed` big-endian ‖ `:` ‖ device id) modulo 10,000, a number of
//! basis points. A device is in a stage of `p` basis points when its bucket
//! is below `p`, so raising the percentage only adds devices and a device's
//! bucket never changes (the seed is fixed when the rollout is created;
//! each rollout draws a new one, so the same devices are not always first).
//! The idea follows Unleash's sticky percentage rollouts, with SHA-256 in
//! place of murmur3.
//!
//! States: `active` (advances by itself after each stage's soak time),
//! `paused` (keeps its devices, does not advance), and the ends:
//! `completed` (the release became the channel's release), `rolled_back`
//! (its devices went back to the channel's release), `aborted` (its
//! release was revoked). An experiment is a rollout too (see
//! [`crate::experiment`]).

use outpost_protocol::fleet::DeviceProfile;
use outpost_protocol::manifest::{ModelName, Version};
use outpost_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// 100 % in basis points.
pub const FULL: u32 = 10_000;

/// The bucket of a device in a rollout, 0..10,000.
pub fn bucket(seed: u64, device_id: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(b":");
    h.update(device_id.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) % u64::from(FULL)) as u32
}

/// Percentages (`[1, 5, 25, 100]`, two decimals at most) as basis points:
/// each in (0, 100], strictly increasing.
pub fn stages_from_percent(percent: &[f64]) -> Result<Vec<u32>, String> {
    if percent.is_empty() || percent.len() > 20 {
        return Err(format!(
            "{} stages; give 1-20, e.g. [1, 5, 25, 100]",
            percent.len()
        ));
    }
    let mut out: Vec<u32> = Vec::with_capacity(percent.len());
    for &p in percent {
        let bp = (p * 100.0).round();
        if !(p > 0.0 && p <= 100.0) || (p * 100.0 - bp).abs() > 1e-6 {
            return Err(format!(
                "stage {p} is not a percentage in (0, 100] with at most two decimals"
            ));
        }
        let bp = bp as u32;
        if out.last().is_some_and(|&last| bp <= last) {
            return Err(format!(
                "stages must rise strictly, but {p} % follows {} %",
                percent_of(out.last().copied().unwrap_or(0))
            ));
        }
        out.push(bp);
    }
    Ok(out)
}

/// Basis points as a percentage.
pub fn percent_of(bp: u32) -> f64 {
    f64::from(bp) / 100.0
}

/// Which devices a rollout may reach at all. Empty lists and absent bounds
/// match everything; a device must match every rule given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_app_version: Option<Version>,
    /// Inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_app_version: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ram_bytes: Option<u64>,
}

impl Target {
    pub fn matches(&self, p: &DeviceProfile) -> bool {
        let listed = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        listed(&self.device_classes, &p.device_class)
            && listed(&self.os, &p.os)
            && (self.regions.is_empty()
                || p.region
                    .as_deref()
                    .is_some_and(|r| listed(&self.regions, r)))
            && self.min_app_version.is_none_or(|v| p.app_version >= v)
            && self.max_app_version.is_none_or(|v| p.app_version <= v)
            && self.min_ram_bytes.is_none_or(|r| p.ram_bytes >= r)
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, list) in [
            ("device_classes", &self.device_classes),
            ("os", &self.os),
            ("regions", &self.regions),
        ] {
            if list.len() > 64 {
                return Err(format!(
                    "target.{name} has {} entries; at most 64",
                    list.len()
                ));
            }
            if let Some(bad) = list.iter().find(|s| s.is_empty() || s.len() > 64) {
                return Err(format!("target.{name} entry {bad:?} must be 1-64 bytes"));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min_app_version, self.max_app_version) {
            if lo > hi {
                return Err(format!(
                    "target.min_app_version {lo} is above target.max_app_version {hi}"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Active,
    Paused,
    Completed,
    RolledBack,
    Aborted,
}

impl RolloutState {
    /// Active or paused: it still decides what its devices run.
    pub fn is_live(self) -> bool {
        matches!(self, RolloutState::Active | RolloutState::Paused)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Active => "active",
            RolloutState::Paused => "paused",
            RolloutState::Completed => "completed",
            RolloutState::RolledBack => "rolled_back",
            RolloutState::Aborted => "aborted",
        }
    }
}

/// A release moving onto a channel. A stored record and part of
/// `RolloutView` (flattened), so unknown fields are not refused: the
/// document could not describe the view otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rollout {
    pub id: u64,
    pub model: ModelName,
    pub version: String,
    pub channel: String,
    /// Basis points per stage, strictly rising.
    pub stages_bp: Vec<u32>,
    /// Index into `stages_bp`.
    pub stage: usize,
    /// How long each stage runs before the rollout advances by itself.
    pub soak_s: u64,
    #[serde(default)]
    pub target: Target,
    pub seed: u64,
    pub state: RolloutState,
    /// The channel's release when the rollout started (what a rollback of
    /// a completed rollout returns to).
    pub previous_version: Option<String>,
    pub created_at: Timestamp,
    pub stage_started_at: Timestamp,
    pub updated_at: Timestamp,
    /// Why it is paused or ended, when someone said.
    #[serde(default)]
    pub reason: Option<String>,
    /// Set when the rollout is an A/B experiment (`experiment/`): one
    /// stage, no soak, judged against `control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<crate::experiment::ExperimentSpec>,
}

/// What an operator (or the soak timer) asks of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAction {
    Advance,
    Pause,
    Resume,
    Complete,
    Rollback,
}

impl RolloutAction {
    pub fn parse(s: &str) -> Option<RolloutAction> {
        Some(match s {
            "advance" => RolloutAction::Advance,
            "pause" => RolloutAction::Pause,
            "resume" => RolloutAction::Resume,
            "complete" => RolloutAction::Complete,
            "rollback" => RolloutAction::Rollback,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutAction::Advance => "advance",
            RolloutAction::Pause => "pause",
            RolloutAction::Resume => "resume",
            RolloutAction::Complete => "complete",
            RolloutAction::Rollback => "rollback",
        }
    }

    /// Moves a rollout forward; the kill switch refuses these.
    pub fn moves_forward(self) -> bool {
        matches!(
            self,
            RolloutAction::Advance | RolloutAction::Resume | RolloutAction::Complete
        )
    }
}

impl Rollout {
    /// The current stage's share, in basis points.
    pub fn percent_bp(&self) -> u32 {
        self.stages_bp.get(self.stage).copied().unwrap_or(FULL)
    }

    /// Whether this device runs the rollout's release now.
    pub fn includes(&self, device_id: &str, profile: &DeviceProfile) -> bool {
        self.state.is_live()
            && self.target.matches(profile)
            && bucket(self.seed, device_id) < self.percent_bp()
    }

    /// Active, and the current stage has soaked its time.
    pub fn soak_due(&self, now: Timestamp) -> bool {
        self.state == RolloutState::Active
            && now.unix_seconds()
                >= self
                    .stage_started_at
                    .unix_seconds()
                    .saturating_add(self.soak_s)
    }

    /// The rollout after `action` at `now`, or why it cannot be done. A
    /// completing rollout (advance past the last stage, or complete) comes
    /// back `Completed`; the caller makes its release the channel's.
    pub fn after(&self, action: RolloutAction, now: Timestamp) -> Result<Rollout, String> {
        let mut r = self.clone();
        r.updated_at = now;
        let live = self.state.is_live();
        let refuse = || {
            Err(format!(
                "rollout {} is {}; {} needs {}",
                self.id,
                self.state.as_str(),
                action.as_str(),
                match action {
                    RolloutAction::Pause => "an active rollout",
                    RolloutAction::Resume => "a paused rollout",
                    RolloutAction::Rollback => "an active, paused or completed rollout",
                    _ => "an active or paused rollout",
                }
            ))
        };
        match action {
            RolloutAction::Advance if live => {
                if self.stage + 1 >= self.stages_bp.len() {
                    r.state = RolloutState::Completed;
                } else {
                    r.stage += 1;
                    r.stage_started_at = now;
                }
            }
            RolloutAction::Complete if live => r.state = RolloutState::Completed,
            RolloutAction::Pause if self.state == RolloutState::Active => {
                r.state = RolloutState::Paused
            }
            RolloutAction::Resume if self.state == RolloutState::Paused => {
                r.state = RolloutState::Active;
                // The soak of the current stage starts again.
                r.stage_started_at = now;
            }
            RolloutAction::Rollback if live || self.state == RolloutState::Completed => {
                r.state = RolloutState::RolledBack
            }
            _ => return refuse(),
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rollout(stages: &[u32]) -> Rollout {
        let t = Timestamp::from_unix_seconds(1000);
        Rollout {
            id: 1,
            model: ModelName::parse("m").expect("name"),
            version: "v2".into(),
            channel: "stable".into(),
            stages_bp: stages.to_vec(),
            stage: 0,
            soak_s: 60,
            target: Target::default(),
            seed: 42,
            state: RolloutState::Active,
            previous_version: Some("v1".into()),
            created_at: t,
            stage_started_at: t,
            updated_at: t,
            reason: None,
            experiment: None,
        }
    }

    proptest! {
        #[test]
        fn raising_the_percentage_only_adds_devices(
            seed in any::<u64>(), id in "[a-z0-9]{1,40}", a in 0u32..=FULL, b in 0u32..=FULL,
        ) {
            let (lo, hi) = (a.min(b), a.max(b));
            let bk = bucket(seed, &id);
            prop_assert!(bk < FULL);
            prop_assert_eq!(bk, bucket(seed, &id), "stable");
            if bk < lo {
                prop_assert!(bk < hi);
            }
        }

        #[test]
        fn stage_membership_is_monotone_over_a_whole_rollout(
            seed in any::<u64>(), ids in proptest::collection::vec("[a-z0-9]{8}", 1..50),
            raw in proptest::collection::btree_set(1u32..=FULL, 1..6),
        ) {
            let mut r = rollout(&raw.iter().copied().collect::<Vec<_>>());
            r.seed = seed;
            let profile = crate::testutil::profile();
            let mut inside: Vec<bool> = ids.iter().map(|d| r.includes(d, &profile)).collect();
            while r.stage + 1 < r.stages_bp.len() {
                r = r.after(RolloutAction::Advance, Timestamp::from_unix_seconds(2000)).expect("advance");
                for (i, d) in ids.iter().enumerate() {
                    let now_in = r.includes(d, &profile);
                    prop_assert!(now_in || !inside[i], "device {} left the rollout", d);
                    inside[i] = now_in;
                }
            }
        }
    }

    #[test]
    fn buckets_spread_evenly() {
        // 20,000 ids: each stage share lands within 1.5 points of its target.
        let ids: Vec<String> = (0..20_000).map(|i| format!("dev-{i}")).collect();
        for (seed, pct) in [(1u64, 1u32), (2, 5), (3, 25), (4, 50)] {
            let n = ids.iter().filter(|d| bucket(seed, d) < pct * 100).count();
            let share = n as f64 / ids.len() as f64 * 100.0;
            assert!((share - f64::from(pct)).abs() < 1.5, "{pct} % → {share}");
        }
        // Different seeds pick different devices.
        let a: Vec<bool> = ids.iter().map(|d| bucket(1, d) < 1000).collect();
        let b: Vec<bool> = ids.iter().map(|d| bucket(2, d) < 1000).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn stages_parse_strictly() {
        assert_eq!(
            stages_from_percent(&[1.0, 5.0, 25.0, 100.0]),
            Ok(vec![100, 500, 2500, FULL])
        );
        assert_eq!(stages_from_percent(&[0.25, 100.0]), Ok(vec![25, FULL]));
        for bad in [
            &[][..],
            &[0.0],
            &[5.0, 5.0],
            &[10.0, 5.0],
            &[101.0],
            &[0.001],
            &[f64::NAN],
        ] {
            assert!(stages_from_percent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn state_machine() {
        let t = Timestamp::from_unix_seconds(5000);
        let r = rollout(&[100, 500, FULL]);
        assert!(!r.soak_due(Timestamp::from_unix_seconds(1059)));
        assert!(r.soak_due(Timestamp::from_unix_seconds(1060)));
        let p = r.after(RolloutAction::Pause, t).expect("pause");
        assert!(!p.soak_due(t), "a paused rollout never advances by itself");
        assert!(p.after(RolloutAction::Pause, t).is_err());
        let a = p.after(RolloutAction::Resume, t).expect("resume");
        assert_eq!(a.stage_started_at, t);
        let a = a.after(RolloutAction::Advance, t).expect("1");
        let a = a.after(RolloutAction::Advance, t).expect("2");
        assert_eq!(a.percent_bp(), FULL);
        let done = a.after(RolloutAction::Advance, t).expect("past the end");
        assert_eq!(done.state, RolloutState::Completed);
        assert!(done.after(RolloutAction::Advance, t).is_err());
        let back = done.after(RolloutAction::Rollback, t).expect("rollback");
        assert_eq!(back.state, RolloutState::RolledBack);
        let e = back.after(RolloutAction::Resume, t).expect_err("ended");
        assert!(e.contains("rolled_back"), "{e}");
    }

    #[test]
    fn targeting_rules() {
        let p = crate::testutil::profile();
        let v = |s| Version::parse(s).ok();
        let mut t = Target::default();
        assert!(t.matches(&p));
        t.device_classes = vec!["phone-8gb".into()];
        t.min_app_version = v("2.0.0");
        t.max_app_version = v("2.3.0");
        t.regions = vec!["eu-west".into()];
        t.min_ram_bytes = Some(8_000_000_000);
        assert!(t.matches(&p));
        for edit in [
            (|t: &mut Target| t.os = vec!["ios".into()]) as fn(&mut Target),
            |t| t.max_app_version = Version::parse("2.2.9").ok(),
            |t| t.min_ram_bytes = Some(8_000_000_001),
            |t| t.regions = vec!["us".into()],
            |t| t.device_classes = vec!["laptop".into()],
        ] {
            let mut t2 = t.clone();
            edit(&mut t2);
            assert!(!t2.matches(&p), "{t2:?}");
        }
    }
}
