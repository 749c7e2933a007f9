//! The agent's own JSON files in the store folder: the device's identity
//! with its fleet (`agent.json`: fleet URL, device id, token, channel,
//! written once at registration) and the small state kept between cycles
//! (`install.rs`). Read whole; written whole (temp file, fsync, rename),
//! readable only by their owner.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::AgentError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub fleet_url: String,
    pub device_id: String,
    pub token: String,
    pub channel: String,
}

impl Identity {
    pub fn path(store_root: &Path) -> PathBuf {
        store_root.join("agent.json")
    }

    /// The saved identity, if any; a damaged file is an error.
    pub fn load(store_root: &Path) -> Result<Option<Identity>, AgentError> {
        read_json(
            &Identity::path(store_root),
            "the device identity",
            "remove it to register again",
        )
    }

    pub fn save(&self, store_root: &Path) -> Result<(), AgentError> {
        write_json(&Identity::path(store_root), self)
    }
}

/// The JSON file at `path` (`what` it is, and the way out when it does not
/// parse), or `None` when there is none.
pub(crate) fn read_json<T: DeserializeOwned>(
    path: &Path,
    what: &str,
    way_out: &str,
) -> Result<Option<T>, AgentError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| AgentError::Config {
                what: format!("{what} {}", path.display()),
                problem: format!("{e}; {way_out}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AgentError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces the file at `path` with `value` as JSON, whole, mode 0600.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), AgentError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let io = |action, source| AgentError::Io {
        action,
        path: tmp.clone(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| io("serialise", e.into()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))
}
