//! Named crash points for crash-safety tests: when `OUTPOST_CRASH_AT`
//! names a point (`install-before-rename`, `install-after-rename`,
//! `activate-before-rename`, `gc-midway`, or for the agent
//! `download=BYTES` and `telemetry-before-ack`), the process aborts there as abruptly as `kill -9` would (no
//! destructors, no flushing). Unset in normal use; read where it is used.

/// The variable the points read.
pub const CRASH_VAR: &str = "OUTPOST_CRASH_AT";

/// The value given for point `name` (`name` or `name=VALUE` in the
/// comma-separated list), if it is armed.
pub fn crash_value(name: &str) -> Option<String> {
    let spec = std::env::var(CRASH_VAR).ok()?;
    spec.split(',').find_map(|item| {
        let (n, v) = item.split_once('=').unwrap_or((item, ""));
        (n.trim() == name).then(|| v.trim().to_string())
    })
}

/// Aborts the process here if point `name` is armed.
pub fn crash_point(name: &str) {
    if crash_value(name).is_some() {
        eprintln!("{CRASH_VAR}: crashing at {name}");
        std::process::abort();
    }
}
