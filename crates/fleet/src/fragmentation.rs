//! The fragmentation view: how the fleet is spread over releases. Devices
//! per model version × channel × device class (by the manifest last issued
//! to each), devices not seen for N days, devices blocked by compatibility
//! per release, and how far each live or completed rollout has reached
//! its target: how many targeted devices run its release now, and how long
//! after the rollout began 50, 90, 99 and 100 % of them had first been
//! issued it (`Device::first_issued`, kept in the database). Targeted
//! devices are those of the channel matching the rules now, so a device
//! that registers later lowers the share until it checks in. Computed from
//! the state in memory.

use std::collections::BTreeMap;

use outpost_protocol::Timestamp;
use serde::{Deserialize, Serialize};

use crate::state::lock;
use crate::Fleet;

/// Devices on one release in one channel and class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FragCell {
    pub model: String,
    pub model_version: String,
    pub channel: String,
    pub device_class: String,
    pub devices: u64,
}

/// Devices blocked from a release at their last check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BlockedCell {
    pub model: String,
    pub model_version: String,
    pub devices: u64,
}

/// Shares of the targeted devices whose time to reach is reported.
pub const MILESTONES: [f64; 4] = [50.0, 90.0, 99.0, 100.0];

/// When a rollout had reached `percent` % of its targeted devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Milestone {
    pub percent: f64,
    /// Seconds from the rollout's start until that many targeted devices
    /// had been issued its release; `null`: not yet.
    pub after_s: Option<u64>,
}

/// A rollout's reach: devices it targets (channel, rules) and how many of
/// them were issued its release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolloutReach {
    pub id: u64,
    pub model: String,
    pub version: String,
    pub channel: String,
    pub state: String,
    pub percent: f64,
    /// Devices of the channel matching the targeting rules.
    pub targeted: u64,
    /// Of those, devices issued the rollout's release.
    pub on_release: u64,
    pub reached_pct: f64,
    pub started_at: Timestamp,
    /// Of the targeted devices, the share ever issued the release (those
    /// since moved off it included): what the milestones count.
    pub ever_issued_pct: f64,
    /// Time to 50, 90, 99 and 100 %.
    pub milestones: Vec<Milestone>,
}

/// Milestones from the times (unix seconds) at which targeted devices were
/// first issued the release; earlier times (and unknown ones, 0) count as
/// the start.
pub fn milestones(start: u64, mut times: Vec<u64>, targeted: u64) -> Vec<Milestone> {
    times.sort_unstable();
    MILESTONES
        .iter()
        .map(|&percent| {
            let need = ((percent / 100.0 * targeted as f64).ceil() as usize).max(1);
            Milestone {
                percent,
                after_s: (targeted > 0 && times.len() >= need)
                    .then(|| times[need - 1].max(start) - start),
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FragmentationView {
    pub devices: u64,
    pub stale_days: u64,
    /// Devices not seen for `stale_days` (never checked in included).
    pub stale: u64,
    pub cells: Vec<FragCell>,
    pub blocked: Vec<BlockedCell>,
    pub rollouts: Vec<RolloutReach>,
    /// Per release, how many devices had first been issued it over time
    /// (the change of the fleet's mix; 24 points from the first issue to
    /// now).
    #[serde(default)]
    pub adoption: Vec<Adoption>,
}

/// Devices first issued a release, over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Adoption {
    pub model: String,
    pub model_version: String,
    /// (when, devices first issued it by then), oldest first.
    pub points: Vec<(Timestamp, u64)>,
}

/// Samples each release's first-issue times at `n` evenly spaced moments
/// from the earliest of them to `now`: the count issued by each moment.
fn adoption(firsts: BTreeMap<(String, String), Vec<u64>>, now: u64, n: u64) -> Vec<Adoption> {
    let start = firsts
        .values()
        .flatten()
        .copied()
        .min()
        .unwrap_or(now)
        .min(now);
    let n = n.max(2);
    firsts
        .into_iter()
        .map(|((model, model_version), mut times)| {
            times.sort_unstable();
            let points = (0..n)
                .map(|i| {
                    let at = start + (now - start) * i / (n - 1);
                    let by = times.partition_point(|&t| t <= at) as u64;
                    (Timestamp::from_unix_seconds(at), by)
                })
                .collect();
            Adoption {
                model,
                model_version,
                points,
            }
        })
        .collect()
}

fn pct(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 * 100.0 / of as f64
    }
}

impl Fleet {
    pub fn fragmentation(&self, stale_days: u64) -> FragmentationView {
        let now = self.now().unix_seconds();
        let cutoff = now.saturating_sub(stale_days.saturating_mul(86_400));
        let state = self.state();
        let live: Vec<_> = state
            .rollouts
            .values()
            .filter(|r| r.state.is_live() || r.state == crate::rollout::RolloutState::Completed)
            .collect();
        let mut cells: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
        let mut blocked: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut reach: Vec<(u64, u64)> = vec![(0, 0); live.len()];
        let mut firsts: Vec<Vec<u64>> = vec![Vec::new(); live.len()];
        let mut issued_at: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
        let (mut total, mut stale) = (0, 0);
        for d in self.devices().all() {
            let d = lock(d);
            total += 1;
            if d.last_seen_at.is_none_or(|t| t.unix_seconds() < cutoff) {
                stale += 1;
            }
            let class = d
                .profile
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |p| p.device_class.clone());
            for (m, i) in &d.issued {
                *cells
                    .entry((
                        m.to_string(),
                        i.model_version.clone(),
                        d.channel.clone(),
                        class.clone(),
                    ))
                    .or_default() += 1;
            }
            for ((m, v), at) in &d.first_issued {
                issued_at
                    .entry((m.to_string(), v.clone()))
                    .or_default()
                    .push(at.unix_seconds());
            }
            for (m, bl) in &d.blocked {
                for b in bl {
                    *blocked
                        .entry((m.to_string(), b.model_version.clone()))
                        .or_default() += 1;
                }
            }
            for (k, r) in live.iter().enumerate() {
                let Some(p) = &d.profile else { continue };
                let same_app = state.model_app(&r.model).is_none_or(|a| a == d.app);
                if d.channel == r.channel && same_app && r.target.matches(p) {
                    reach[k].0 += 1;
                    if let Some(at) = d.first_issued.get(&(r.model.clone(), r.version.clone())) {
                        firsts[k].push(at.unix_seconds());
                    }
                    if d.issued
                        .get(&r.model)
                        .is_some_and(|i| i.model_version == r.version)
                    {
                        reach[k].1 += 1;
                    }
                }
            }
        }
        FragmentationView {
            devices: total,
            stale_days,
            stale,
            cells: cells
                .into_iter()
                .map(
                    |((model, model_version, channel, device_class), devices)| FragCell {
                        model,
                        model_version,
                        channel,
                        device_class,
                        devices,
                    },
                )
                .collect(),
            blocked: blocked
                .into_iter()
                .map(|((model, model_version), devices)| BlockedCell {
                    model,
                    model_version,
                    devices,
                })
                .collect(),
            rollouts: live
                .iter()
                .zip(reach)
                .zip(firsts)
                .map(|((r, (targeted, on)), times)| RolloutReach {
                    id: r.id,
                    model: r.model.to_string(),
                    version: r.version.clone(),
                    channel: r.channel.clone(),
                    state: r.state.as_str().into(),
                    percent: crate::rollout::percent_of(r.percent_bp()),
                    targeted,
                    on_release: on,
                    reached_pct: pct(on, targeted),
                    started_at: r.created_at,
                    ever_issued_pct: pct(times.len() as u64, targeted),
                    milestones: milestones(r.created_at.unix_seconds(), times, targeted),
                })
                .collect(),
            adoption: adoption(issued_at, now, 24),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{adoption, milestones};

    #[test]
    fn adoption_counts_first_issues_by_each_moment() {
        let mut firsts = std::collections::BTreeMap::new();
        firsts.insert(("m".to_string(), "1".to_string()), vec![100, 100, 150]);
        firsts.insert(("m".to_string(), "2".to_string()), vec![190, 200]);
        let a = adoption(firsts, 200, 3);
        let counts = |i: usize| a[i].points.iter().map(|p| p.1).collect::<Vec<_>>();
        // Moments 100, 150, 200.
        assert_eq!(counts(0), [2, 3, 3]);
        assert_eq!(counts(1), [0, 0, 2]);
        assert_eq!(a[1].points[2].0.unix_seconds(), 200);
    }

    #[test]
    fn milestones_are_order_statistics_of_first_issue_times() {
        // 10 targeted devices, 9 issued at start+1..start+9 (one before the
        // start, counted as the start): 50 % = 5th time, 90 % = 9th, 99 %
        // and 100 % need all 10.
        let start = 1000;
        let times = vec![1009, 1002, 990, 1004, 1005, 1003, 1006, 1007, 1008];
        let m = milestones(start, times.clone(), 10);
        let got: Vec<_> = m.iter().map(|m| (m.percent, m.after_s)).collect();
        assert_eq!(
            got,
            [
                (50.0, Some(5)),
                (90.0, Some(9)),
                (99.0, None),
                (100.0, None)
            ]
        );
        let mut all = times;
        all.push(1030);
        let m = milestones(start, all, 10);
        assert_eq!(m[3].after_s, Some(30));
        assert_eq!(m[2].after_s, Some(30), "99 % of 10 needs all 10");
        assert!(milestones(start, vec![], 0)
            .iter()
            .all(|m| m.after_s.is_none()));
    }
}
