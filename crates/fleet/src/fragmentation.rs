//! The fragmentation view: how the fleet is spread over releases. Devices
//! per model version × channel × device class (by the manifest last issued
//! to each), devices not seen for N days, devices blocked by compatibility
//! per release, and how far each live rollout has reached its target.
//! Computed from the state in memory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::state::lock;
use crate::Fleet;

/// Devices on one release in one channel and class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragCell {
    pub model: String,
    pub model_version: String,
    pub channel: String,
    pub device_class: String,
    pub devices: u64,
}

/// Devices blocked from a release at their last check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedCell {
    pub model: String,
    pub model_version: String,
    pub devices: u64,
}

/// A live rollout's reach: devices it targets (channel, rules, stage) and
/// how many of them were issued its release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FragmentationView {
    pub devices: u64,
    pub stale_days: u64,
    /// Devices not seen for `stale_days` (never checked in included).
    pub stale: u64,
    pub cells: Vec<FragCell>,
    pub blocked: Vec<BlockedCell>,
    pub rollouts: Vec<RolloutReach>,
}

impl Fleet {
    pub fn fragmentation(&self, stale_days: u64) -> FragmentationView {
        let now = self.now().unix_seconds();
        let cutoff = now.saturating_sub(stale_days.saturating_mul(86_400));
        let state = self.state();
        let live: Vec<_> = state
            .rollouts
            .values()
            .filter(|r| r.state.is_live())
            .collect();
        let mut cells: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
        let mut blocked: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut reach: Vec<(u64, u64)> = vec![(0, 0); live.len()];
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
            for (m, bl) in &d.blocked {
                for b in bl {
                    *blocked
                        .entry((m.to_string(), b.model_version.clone()))
                        .or_default() += 1;
                }
            }
            for (k, r) in live.iter().enumerate() {
                let Some(p) = &d.profile else { continue };
                if d.channel == r.channel && r.target.matches(p) {
                    reach[k].0 += 1;
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
                .map(|(r, (targeted, on))| RolloutReach {
                    id: r.id,
                    model: r.model.to_string(),
                    version: r.version.clone(),
                    channel: r.channel.clone(),
                    state: r.state.as_str().into(),
                    percent: crate::rollout::percent_of(r.percent_bp()),
                    targeted,
                    on_release: on,
                    reached_pct: if targeted == 0 {
                        0.0
                    } else {
                        on as f64 * 100.0 / targeted as f64
                    },
                })
                .collect(),
        }
    }
}
