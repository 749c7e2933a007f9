//! Which release a device runs, and whether it can load it. Pure: state,
//! device and profile in, a decision out.
//!
//! Candidates, in order: the device's pin; the live rollout of its channel
//! when the device is targeted and its bucket is inside the current stage;
//! then the channel's releases, newest first. Revoked releases are skipped
//! (noted); releases the device cannot load are skipped and reported as
//! blocked. The first candidate left wins, so a device too old for the new
//! release keeps the newest one it can run, and a revoked release's devices
//! fall back to the one before.

use std::collections::BTreeMap;

use outpost_protocol::fleet::{AssignmentSource, Blocked, DeviceProfile};
use outpost_protocol::manifest::ModelName;

use crate::state::{FleetState, Release};

/// What one model should be on one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'a> {
    pub chosen: Option<(&'a Release, AssignmentSource)>,
    pub blocked: Vec<Blocked>,
    pub note: Option<String>,
}

pub fn decide<'a>(
    state: &'a FleetState,
    device_id: &str,
    channel: &str,
    pins: &BTreeMap<ModelName, String>,
    profile: &DeviceProfile,
    model: &'a ModelName,
) -> Decision<'a> {
    let mut candidates: Vec<(&str, AssignmentSource)> = Vec::new();
    if let Some(v) = pins.get(model) {
        candidates.push((v, AssignmentSource::Pin));
    }
    if let Some(r) = state.live_rollout(channel, model) {
        if r.includes(device_id, profile) {
            candidates.push((&r.version, AssignmentSource::Rollout));
        }
    }
    for v in state.channel_history(channel, model) {
        candidates.push((v, AssignmentSource::Channel));
    }
    let mut blocked: Vec<Blocked> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (version, source) in candidates {
        if seen.contains(&version) {
            continue;
        }
        seen.push(version);
        let Some(release) = state.release(model, version) else {
            continue;
        };
        if let Some(rev) = &release.revoked {
            notes.push(format!("{model}@{version} is revoked ({})", rev.reason));
            continue;
        }
        match compatible(release, profile) {
            Ok(()) => {
                return Decision {
                    chosen: Some((release, source)),
                    blocked,
                    note: join(notes),
                }
            }
            Err(reason) => blocked.push(Blocked {
                model_version: version.to_string(),
                reason,
            }),
        }
    }
    if notes.is_empty() && blocked.is_empty() {
        notes.push(format!("channel {channel} has no release of {model}"));
    }
    Decision {
        chosen: None,
        blocked,
        note: join(notes),
    }
}

fn join(notes: Vec<String>) -> Option<String> {
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// Whether a device can load the variant its class gets in `release`;
/// the error says what is missing, with both numbers.
pub fn compatible(release: &Release, p: &DeviceProfile) -> Result<(), String> {
    let meta = &release.meta;
    if let Some(reason) = meta.blocked.get(&p.device_class) {
        return Err(format!(
            "device class {:?} runs no variant of this release: {reason}",
            p.device_class
        ));
    }
    let Some((_, cfg)) = meta.class_config(&p.device_class) else {
        return Err(format!(
            "no runtime config for device class {:?} and no \"default\"",
            p.device_class
        ));
    };
    let Some(v) = meta.variant(&cfg.variant) else {
        return Err(format!(
            "variant {} is missing from the release",
            cfg.variant
        ));
    };
    if p.app_version < meta.min_app_version {
        return Err(format!(
            "app {} is older than the required {}",
            p.app_version, meta.min_app_version
        ));
    }
    if p.engine_version < v.min_engine_version {
        return Err(format!(
            "engine {} is older than the required {}",
            p.engine_version, v.min_engine_version
        ));
    }
    let missing: Vec<&str> = v
        .ggml_types
        .iter()
        .filter(|t| !p.ggml_types.contains(t))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "engine cannot load ggml types {missing:?} of {}",
            v.quantization
        ));
    }
    if p.ram_bytes < v.memory_bytes {
        return Err(format!(
            "{} needs {} bytes of RAM, the device has {}",
            v.quantization, v.memory_bytes, p.ram_bytes
        ));
    }
    let installed = v
        .digest
        .is_some_and(|d| p.installed.iter().any(|i| i.digest == d));
    let length = v.length.unwrap_or(0);
    if !installed && p.free_disk_bytes < length {
        return Err(format!(
            "{} needs {length} bytes of disk, the device has {} free",
            v.quantization, p.free_disk_bytes
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::sample;
    use crate::rollout::{Rollout, RolloutState, Target};
    use crate::state::{Channel, ChannelEntry, Revocation};
    use outpost_protocol::manifest::Version;
    use outpost_protocol::Timestamp;

    fn state() -> (FleetState, ModelName) {
        let m = ModelName::parse("m").expect("name");
        let mut s = FleetState::default();
        let t = Timestamp::from_unix_seconds(1);
        for (v, data) in [("v1", &b"GGUF1"[..]), ("v2", b"GGUF2"), ("v3", b"GGUF3")] {
            s.releases.insert(
                (m.clone(), v.into()),
                Release {
                    meta: sample("m", v, data),
                    published_at: t,
                    revoked: None,
                },
            );
        }
        let entry = |v: &str| ChannelEntry {
            model: m.clone(),
            version: v.into(),
            at: t,
        };
        s.channels.insert(
            "stable".into(),
            Channel {
                name: "stable".into(),
                created_at: t,
                history: vec![entry("v1"), entry("v2")],
            },
        );
        (s, m)
    }

    fn version_of(d: &Decision<'_>) -> Option<String> {
        d.chosen.map(|(r, _)| r.meta.version.clone())
    }

    #[test]
    fn pin_then_rollout_then_channel_newest_first() {
        let (mut s, m) = state();
        let p = crate::testutil::profile();
        let none = BTreeMap::new();
        let d = decide(&s, "dev-1", "stable", &none, &p, &m);
        assert_eq!(version_of(&d).as_deref(), Some("v2"));
        assert_eq!(d.chosen.map(|c| c.1), Some(AssignmentSource::Channel));

        let t = Timestamp::from_unix_seconds(1);
        s.rollouts.insert(
            1,
            Rollout {
                id: 1,
                model: m.clone(),
                version: "v3".into(),
                channel: "stable".into(),
                stages_bp: vec![10_000],
                stage: 0,
                soak_s: 0,
                target: Target::default(),
                seed: 1,
                state: RolloutState::Active,
                previous_version: Some("v2".into()),
                created_at: t,
                stage_started_at: t,
                updated_at: t,
                reason: None,
                experiment: None,
            },
        );
        let d = decide(&s, "dev-1", "stable", &none, &p, &m);
        assert_eq!(version_of(&d).as_deref(), Some("v3"));
        let pins = BTreeMap::from([(m.clone(), "v1".to_string())]);
        let d = decide(&s, "dev-1", "stable", &pins, &p, &m);
        assert_eq!(d.chosen.map(|c| c.1), Some(AssignmentSource::Pin));

        // Revoking v3 sends the rollout's devices back to v2, with a note.
        s.releases
            .get_mut(&(m.clone(), "v3".into()))
            .expect("v3")
            .revoked = Some(Revocation {
            at: t,
            reason: "bad answers".into(),
        });
        let d = decide(&s, "dev-1", "stable", &none, &p, &m);
        assert_eq!(version_of(&d).as_deref(), Some("v2"));
        assert!(
            d.note.as_deref().is_some_and(|n| n.contains("bad answers")),
            "{d:?}"
        );
    }

    #[test]
    fn incompatible_releases_are_blocked_and_skipped() {
        let (mut s, m) = state();
        let none = BTreeMap::new();
        let v2 = s.releases.get_mut(&(m.clone(), "v2".into())).expect("v2");
        v2.meta.variants[0].min_engine_version = Version::parse("9.0.0").expect("v");
        let p = crate::testutil::profile();
        let d = decide(&s, "dev-1", "stable", &none, &p, &m);
        assert_eq!(version_of(&d).as_deref(), Some("v1"));
        assert_eq!(d.blocked.len(), 1);
        assert!(d.blocked[0].reason.contains("engine 0.1.0"), "{d:?}");

        for edit in [
            (|p: &mut DeviceProfile| p.ram_bytes = 1) as fn(&mut DeviceProfile),
            |p| p.ggml_types = vec!["f32".into()],
            |p| p.free_disk_bytes = 0,
            |p| p.app_version = Version::parse("0.9.0").expect("v"),
        ] {
            let mut p = crate::testutil::profile();
            edit(&mut p);
            let d = decide(&s, "dev-1", "stable", &none, &p, &m);
            assert_eq!(d.chosen, None, "{p:?}");
            assert_eq!(d.blocked.len(), 2, "{d:?}");
        }
        let d = decide(&s, "dev-1", "beta", &none, &crate::testutil::profile(), &m);
        assert!(d.note.as_deref().is_some_and(|n| n.contains("no release")));
    }
}
