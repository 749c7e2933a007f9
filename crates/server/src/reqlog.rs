//! `outpost serve --log-requests FILE`: every non-empty request body the server
//! receives, one JSON line each (`{"ts", "method", "path", "body"}`), so
//! one can see exactly what reached this server (a test proves with it what
//! a "cloud" server saw). Bodies are logged as JSON when they parse, else
//! as a string.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::served::now;

/// An append-only JSON-lines file.
#[derive(Debug)]
pub struct RequestLog(Mutex<std::fs::File>);

impl RequestLog {
    /// Opens (creates, appends to) `path`.
    pub fn open(path: &Path) -> std::io::Result<RequestLog> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(RequestLog(Mutex::new(f)))
    }

    pub(crate) fn write(&self, method: &str, path: &str, body: &[u8]) {
        let body = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
        });
        let line = serde_json::json!({"ts": now(), "method": method, "path": path, "body": body});
        if let Ok(mut f) = self.0.lock() {
            // The log is a diagnostic: a full disk must not fail the request.
            let _ = writeln!(f, "{line}");
            let _ = f.flush();
        }
    }
}
