//! Device state for routing: battery and thermal throttling. Read from
//! Linux sysfs (`/sys/class/power_supply/*/{type,capacity,status}`,
//! `/sys/class/thermal/thermal_zone*/temp`) where present; a state file or
//! fixed values in the policy override it (so tests and other platforms can
//! set it). Cached for a second, so a request never waits on sysfs.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::policy::DeviceConfig;

/// What the device says now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceState {
    /// None: no battery (mains power).
    pub battery_percent: Option<u8>,
    pub charging: Option<bool>,
    pub thermal_throttled: Option<bool>,
    /// Hottest thermal zone, °C.
    #[serde(skip)]
    pub max_temp_c: Option<f32>,
}

impl DeviceState {
    pub fn battery_low(&self, cfg: &DeviceConfig) -> bool {
        self.battery_percent
            .is_some_and(|p| p <= cfg.battery_low_percent)
            && self.charging != Some(true)
    }

    pub fn throttled(&self, cfg: &DeviceConfig) -> bool {
        self.thermal_throttled
            .unwrap_or_else(|| self.max_temp_c.is_some_and(|t| t >= cfg.thermal_limit_c))
    }
}

/// Reads the state at most once a second.
#[derive(Debug)]
pub struct DeviceMonitor {
    cfg: DeviceConfig,
    cache: Mutex<Option<(Instant, DeviceState)>>,
}

impl DeviceMonitor {
    pub fn new(cfg: DeviceConfig) -> Self {
        DeviceMonitor {
            cfg,
            cache: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }

    pub fn state(&self) -> DeviceState {
        let now = Instant::now();
        if let Ok(c) = self.cache.lock() {
            if let Some((at, s)) = *c {
                if now.duration_since(at) < Duration::from_secs(1) {
                    return s;
                }
            }
        }
        let s = self.read();
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((now, s));
        }
        s
    }

    /// sysfs, then the state file, then the policy's fixed values, each
    /// replacing what the one before said.
    fn read(&self) -> DeviceState {
        let mut s = read_sysfs(Path::new("/sys"));
        if let Some(file) = &self.cfg.state_file {
            // A missing or unreadable file counts as "no override": the
            // device keeps serving; the problem shows in the route reasons.
            if let Some(f) = std::fs::read_to_string(file)
                .ok()
                .and_then(|t| serde_json::from_str::<DeviceState>(&t).ok())
            {
                s.battery_percent = f.battery_percent.or(s.battery_percent);
                s.charging = f.charging.or(s.charging);
                s.thermal_throttled = f.thermal_throttled.or(s.thermal_throttled);
            }
        }
        s.battery_percent = self.cfg.battery_percent.or(s.battery_percent);
        s.charging = self.cfg.charging.or(s.charging);
        s.thermal_throttled = self.cfg.thermal_throttled.or(s.thermal_throttled);
        s
    }
}

/// Battery and temperatures under a sysfs root.
pub fn read_sysfs(root: &Path) -> DeviceState {
    let mut s = DeviceState::default();
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .map(|t| t.trim().to_string())
    };
    if let Ok(dir) = std::fs::read_dir(root.join("class/power_supply")) {
        for e in dir.flatten() {
            let p = e.path();
            if read(&p.join("type")).as_deref() != Some("Battery") {
                continue;
            }
            if let Some(c) = read(&p.join("capacity")).and_then(|c| c.parse().ok()) {
                s.battery_percent = Some(c);
            }
            if let Some(st) = read(&p.join("status")) {
                s.charging = Some(st == "Charging" || st == "Full");
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(root.join("class/thermal")) {
        for e in dir.flatten() {
            let p = e.path();
            if !e.file_name().to_string_lossy().starts_with("thermal_zone") {
                continue;
            }
            if let Some(milli) = read(&p.join("temp")).and_then(|t| t.parse::<f32>().ok()) {
                let c = milli / 1000.0;
                s.max_temp_c = Some(s.max_temp_c.map_or(c, |m: f32| m.max(c)));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_then_file_then_policy() {
        let root =
            std::env::temp_dir().join(format!("outpost-router-sysfs-{}", std::process::id()));
        let bat = root.join("class/power_supply/BAT0");
        let zone = root.join("class/thermal/thermal_zone0");
        std::fs::create_dir_all(&bat).expect("mkdir");
        std::fs::create_dir_all(&zone).expect("mkdir");
        std::fs::write(bat.join("type"), "Battery\n").expect("write");
        std::fs::write(bat.join("capacity"), "12\n").expect("write");
        std::fs::write(bat.join("status"), "Discharging\n").expect("write");
        std::fs::write(zone.join("temp"), "85000\n").expect("write");
        let s = read_sysfs(&root);
        let cfg = DeviceConfig::default();
        assert_eq!(s.battery_percent, Some(12));
        assert!(s.battery_low(&cfg) && s.throttled(&cfg));
        let file = root.join("state.json");
        std::fs::write(
            &file,
            r#"{"battery_percent": 90, "thermal_throttled": false}"#,
        )
        .expect("write");
        let m = DeviceMonitor::new(DeviceConfig {
            state_file: Some(file),
            charging: Some(true),
            ..DeviceConfig::default()
        });
        let s = m.state();
        assert_eq!(s.battery_percent, Some(90));
        assert_eq!(s.charging, Some(true));
        assert!(!s.throttled(&cfg));
        let _ = std::fs::remove_dir_all(&root);
    }
}
