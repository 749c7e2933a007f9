//! The simulator's requests to one fleet or several replicas of it
//! (`--also URL`): device `i` starts on URL `i mod n`; a request that
//! cannot connect, is cut off, or answers 5xx is tried again on the next
//! URL, a little later, as a device would behind a load balancer while a
//! replica restarts. The caller learns whether an earlier try may have
//! reached the fleet (its answer lost), so a telemetry batch then answered
//! `duplicate` is known to have been counted by that try.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::Value;

/// How many times a request is tried before the device gives up.
const TRIES: usize = 40;
/// The pause between tries.
const PAUSE: Duration = Duration::from_millis(250);

/// The fleet's URLs (one, or every replica's).
pub(super) struct Fleets {
    urls: Vec<String>,
}

/// An answer, and whether an earlier try may have been acted on.
pub(super) struct Answer {
    pub body: Value,
    pub retried: bool,
}

impl Fleets {
    pub(super) fn new(url: &str, also: &[String]) -> Fleets {
        let mut urls = vec![url.trim_end_matches('/').to_string()];
        urls.extend(also.iter().map(|u| u.trim_end_matches('/').to_string()));
        Fleets { urls }
    }

    /// POSTs `body` to `path` for device `i`, moving to the next URL on a
    /// connection failure or a 5xx; a 4xx is the device's error, at once.
    pub(super) fn post(
        &self,
        agent: &ureq::Agent,
        i: usize,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Answer> {
        let mut last = String::new();
        for attempt in 0..TRIES {
            let url = format!("{}{path}", self.urls[(i + attempt) % self.urls.len()]);
            let mut req = agent.post(&url);
            if let Some(t) = token {
                req = req.set("authorization", &format!("Bearer {t}"));
            }
            match req.send_json(body) {
                Ok(r) => match r.into_json() {
                    Ok(body) => {
                        return Ok(Answer {
                            body,
                            retried: attempt > 0,
                        })
                    }
                    Err(e) => last = format!("{url}: reading the answer: {e}"),
                },
                Err(ureq::Error::Status(code, r)) if code < 500 => {
                    let b: Value = r.into_json().unwrap_or(Value::Null);
                    bail!("{url}: {code} {}", b["error"]["message"])
                }
                Err(ureq::Error::Status(code, _)) => last = format!("{url}: {code}"),
                Err(e) => last = format!("{url}: {e}"),
            }
            if self.urls.len() == 1 && attempt == 0 {
                // One fleet: a failure is reported as it was, untried.
                bail!("{last}");
            }
            std::thread::sleep(PAUSE);
        }
        bail!("{last} (after {TRIES} tries over {} URLs)", self.urls.len())
    }
}
