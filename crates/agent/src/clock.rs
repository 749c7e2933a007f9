//! The device's wall clock as the protocol's `Timestamp` (manifest expiry,
//! telemetry times, key-grant expiry).

use outpost_protocol::Timestamp;

/// Now, in whole unix seconds (0 before 1970).
pub(crate) fn now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Timestamp::from_unix_seconds(secs)
}
