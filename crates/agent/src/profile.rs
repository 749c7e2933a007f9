//! The device profile sent at check-in: memory, CPU, accelerator, OS,
//! free disk, battery and thermal state (from `/proc` and `/sys` where
//! Linux has them), engine version and the GGML types it loads, mapped to a
//! device class. Every field can be overridden from a TOML profile file,
//! so one machine can act as many devices:
//!
//! ```toml
//! device_class = "phone-4GB"
//! ram_bytes = 4_000_000_000
//! os = "android"
//! battery_pct = 15
//! charging = false
//! unmetered = true
//! ```

use std::path::Path;

use outpost_protocol::fleet::DeviceProfile;
use outpost_protocol::manifest::Version;
use serde::Deserialize;

use crate::AgentError;

/// What the agent knows of its device: the fleet's profile plus local
/// facts that gate downloads and routing.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub fleet: DeviceProfile,
    pub cpu_model: Option<String>,
    pub cores: u32,
    pub available_ram_bytes: u64,
    /// Battery level 0-100, if the device has one.
    pub battery_pct: Option<u8>,
    pub charging: Option<bool>,
    /// Hottest thermal zone, °C.
    pub temperature_c: Option<f64>,
    /// On an unmetered network (Wi-Fi, ethernet). Unknown on Linux: true
    /// unless the profile file says otherwise.
    pub unmetered: bool,
}

/// The profile file: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub device_class: Option<String>,
    pub ram_bytes: Option<u64>,
    pub available_ram_bytes: Option<u64>,
    pub cpu_model: Option<String>,
    pub cores: Option<u32>,
    pub cpu_features: Option<Vec<String>>,
    pub accelerator: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub engine_version: Option<String>,
    pub ggml_types: Option<Vec<String>>,
    pub region: Option<String>,
    pub free_disk_bytes: Option<u64>,
    pub battery_pct: Option<u8>,
    pub charging: Option<bool>,
    pub temperature_c: Option<f64>,
    pub unmetered: Option<bool>,
}

impl Overrides {
    /// Reads a TOML profile file; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Overrides, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::Config {
            what: format!("reading the profile file {}", path.display()),
            problem: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| AgentError::Config {
            what: format!("the profile file {}", path.display()),
            problem: e.to_string().trim().to_string(),
        })
    }
}

/// The device class for `ram_bytes` of RAM, by the variant pipeline's
/// built-in classes.
pub fn class_for_ram(ram_bytes: u64) -> &'static str {
    const GB: u64 = 1_000_000_000;
    match ram_bytes {
        r if r < 6 * GB => "phone-4GB",
        r if r < 12 * GB => "phone-8GB",
        r if r < 24 * GB => "laptop-16GB",
        _ => "desktop-32GB",
    }
}

/// Facts the agent cannot find itself: the engine the app embeds.
#[derive(Debug, Clone)]
pub struct EngineFacts {
    pub app_version: Version,
    pub engine_version: Version,
    pub ggml_types: Vec<String>,
}

/// Profiles this machine, then applies `overrides`. `store_root` is where
/// free disk is measured.
pub fn detect(
    engine: &EngineFacts,
    store_root: &Path,
    overrides: &Overrides,
) -> Result<Profile, AgentError> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let features: Vec<String> = field("flags")
        .or_else(|| field("Features"))
        .unwrap_or_default()
        .split_whitespace()
        .filter(|f| SIMD.contains(f))
        .map(str::to_string)
        .collect();
    let ram = overrides.ram_bytes.or_else(|| mem("MemTotal")).unwrap_or(0);
    let check = |field: &str, v: &Option<String>| -> Result<Option<Version>, AgentError> {
        v.as_deref()
            .map(|s| {
                Version::parse(s).map_err(|e| AgentError::Config {
                    what: format!("profile field {field}"),
                    problem: e.to_string(),
                })
            })
            .transpose()
    };
    let fleet = DeviceProfile {
        device_class: overrides
            .device_class
            .clone()
            .unwrap_or_else(|| class_for_ram(ram).to_string()),
        ram_bytes: ram,
        cpu_features: overrides.cpu_features.clone().unwrap_or(features),
        accelerator: overrides.accelerator.clone().or_else(accelerator),
        os: overrides
            .os
            .clone()
            .unwrap_or_else(|| std::env::consts::OS.to_string()),
        os_version: overrides.os_version.clone().or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().chars().take(64).collect())
        }),
        app_version: check("app_version", &overrides.app_version)?.unwrap_or(engine.app_version),
        engine_version: check("engine_version", &overrides.engine_version)?
            .unwrap_or(engine.engine_version),
        ggml_types: overrides
            .ggml_types
            .clone()
            .unwrap_or_else(|| engine.ggml_types.clone()),
        region: overrides.region.clone(),
        installed: Vec::new(),
        free_disk_bytes: overrides
            .free_disk_bytes
            .unwrap_or_else(|| free_disk(store_root)),
    };
    fleet.validate().map_err(|e| AgentError::Config {
        what: "the device profile".into(),
        problem: e.to_string(),
    })?;
    let (battery_pct, charging) = battery();
    Ok(Profile {
        fleet,
        cpu_model: overrides.cpu_model.clone().or_else(|| field("model name")),
        cores: overrides
            .cores
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32)),
        available_ram_bytes: overrides
            .available_ram_bytes
            .or_else(|| mem("MemAvailable"))
            .unwrap_or(0),
        battery_pct: overrides.battery_pct.or(battery_pct),
        charging: overrides.charging.or(charging),
        temperature_c: overrides.temperature_c.or_else(temperature),
        unmetered: overrides.unmetered.unwrap_or(true),
    })
}

/// CPU flags worth reporting (what llama.cpp's kernels use).
const SIMD: &[&str] = &[
    "sse3",
    "ssse3",
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "neon",
    "asimd",
    "asimddp",
    "sve",
    "sve2",
    "i8mm",
    "fphp",
    "asimdhp",
];

fn accelerator() -> Option<String> {
    Path::new("/dev/nvidia0")
        .exists()
        .then(|| "cuda".to_string())
}

/// Free bytes on the file system holding `path` (`df`'s avail).
fn free_disk(path: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-P", "-B1"])
        .arg(path)
        .output();
    out.ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Level and charging state of the first battery in `/sys`.
fn battery() -> (Option<u8>, Option<bool>) {
    let Ok(dir) = std::fs::read_dir("/sys/class/power_supply") else {
        return (None, None);
    };
    for e in dir.flatten() {
        let p = e.path();
        let kind = std::fs::read_to_string(p.join("type")).unwrap_or_default();
        if kind.trim() != "Battery" {
            continue;
        }
        let level = std::fs::read_to_string(p.join("capacity"))
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok());
        let status = std::fs::read_to_string(p.join("status")).unwrap_or_default();
        let charging = match status.trim() {
            "Charging" | "Full" => Some(true),
            "Discharging" | "Not charging" => Some(false),
            _ => None,
        };
        return (level, charging);
    }
    (None, None)
}

/// The hottest thermal zone in `/sys`, °C.
fn temperature() -> Option<f64> {
    let dir = std::fs::read_dir("/sys/class/thermal").ok()?;
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("temp")).ok())
        .filter_map(|s| s.trim().parse::<f64>().ok())
        .map(|milli| milli / 1000.0)
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> EngineFacts {
        EngineFacts {
            app_version: Version::parse("0.1.0").expect("v"),
            engine_version: Version::parse("0.1.0").expect("v"),
            ggml_types: vec!["f32".into(), "q4_0".into()],
        }
    }

    #[test]
    fn this_machine_profiles_and_overrides_win() {
        let p = detect(&engine(), Path::new("/"), &Overrides::default()).expect("profile");
        assert!(p.fleet.ram_bytes > 0, "MemTotal read");
        assert!(p.cores >= 1);
        assert_eq!(p.fleet.device_class, class_for_ram(p.fleet.ram_bytes));
        assert!(p.fleet.free_disk_bytes > 0, "df read");
        let o: Overrides = toml::from_str(
            "device_class = \"phone-4GB\"\nram_bytes = 4000000000\nos = \"android\"\nbattery_pct = 12\ncharging = false\nunmetered = false\n",
        )
        .expect("toml");
        let p = detect(&engine(), Path::new("/"), &o).expect("profile");
        assert_eq!(p.fleet.device_class, "phone-4GB");
        assert_eq!(
            (p.fleet.ram_bytes, p.fleet.os.as_str()),
            (4_000_000_000, "android")
        );
        assert_eq!(
            (p.battery_pct, p.charging, p.unmetered),
            (Some(12), Some(false), false)
        );
    }

    #[test]
    fn bad_profile_files_name_the_field() {
        let e = toml::from_str::<Overrides>("ram_byte = 5\n").expect_err("unknown field");
        assert!(e.to_string().contains("ram_byte"), "{e}");
        let o: Overrides = toml::from_str("app_version = \"one\"\n").expect("parses");
        let e = detect(&engine(), Path::new("/"), &o).expect_err("bad version");
        assert!(e.to_string().contains("app_version"), "{e}");
        let o: Overrides = toml::from_str("device_class = \"a b\"\n").expect("parses");
        let e = detect(&engine(), Path::new("/"), &o).expect_err("bad class");
        assert!(e.to_string().contains("device_class"), "{e}");
    }

    #[test]
    fn classes_follow_ram() {
        assert_eq!(class_for_ram(4_000_000_000), "phone-4GB");
        assert_eq!(class_for_ram(8_000_000_000), "phone-8GB");
        assert_eq!(class_for_ram(16_000_000_000), "laptop-16GB");
        assert_eq!(class_for_ram(32_000_000_000), "desktop-32GB");
    }
}
