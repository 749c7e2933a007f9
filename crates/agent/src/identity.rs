//! The device's identity with its fleet (`<store>/agent.json`: fleet URL,
//! device id, token, channel), written once at registration, 0600.

use std::path::{Path, PathBuf};

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
        let path = Identity::path(store_root);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| AgentError::Config {
                    what: format!("the device identity {}", path.display()),
                    problem: format!("{e}; remove it to register again"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AgentError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    /// Writes the identity whole (temp file, fsync, rename), readable
    /// only by its owner.
    pub fn save(&self, store_root: &Path) -> Result<(), AgentError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = Identity::path(store_root);
        let tmp = path.with_extension("json.tmp");
        let io = |action, source| AgentError::Io {
            action,
            path: tmp.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("create", e))?;
        f.write_all(&serde_json::to_vec_pretty(self).unwrap_or_default())
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))
    }
}
