//! The fleet's device API over HTTP (blocking `ureq`): register, check in,
//! send telemetry, and download an artifact into the store's partial file
//! with `Range`, a bandwidth cap and a progress line on a terminal.

use std::io::Read;
use std::time::{Duration, Instant};

use outpost_protocol::fleet::{
    CheckInRequest, CheckInResponse, DeviceProfile, KeyGrant, KeyRequest, RegisterRequest,
    RegisterResponse,
};
use outpost_protocol::telemetry::{TelemetryAck, TelemetryBatch};
use outpost_protocol::{Digest, ModelName};
use outpost_store::{crash_value, Store};

use crate::AgentError;

/// A device's connection to the fleet.
pub struct FleetClient {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
    /// Most bytes per second a download may take; `None`: no cap.
    pub bandwidth_cap: Option<u64>,
}

/// What one download did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fetched {
    /// Bytes already present from an earlier attempt.
    pub resumed_from: u64,
    /// Bytes transferred now.
    pub transferred: u64,
}

impl FleetClient {
    pub fn new(base: &str, token: Option<String>) -> FleetClient {
        FleetClient {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(60))
                // A blob download may be sent elsewhere (a fleet with blobs
                // on S3 answers 307 to a pre-signed URL): followed by hand in
                // `download`, without the fleet's token.
                .redirects(0)
                .build(),
            token,
            bandwidth_cap: None,
        }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let r = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.set("authorization", &format!("Bearer {t}")),
            None => r,
        }
    }

    fn fail(&self, what: &str, e: ureq::Error) -> AgentError {
        match e {
            ureq::Error::Status(status, resp) => {
                let body = resp.into_string().unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or(body);
                if status == 401 {
                    AgentError::Unauthorized {
                        message,
                        identity: String::new(),
                    }
                } else {
                    AgentError::Fleet {
                        what: what.to_string(),
                        status,
                        message,
                    }
                }
            }
            ureq::Error::Transport(t) => AgentError::Offline {
                url: self.base.clone(),
                problem: t.to_string(),
            },
        }
    }

    fn post<T: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
        body: &T,
    ) -> Result<R, AgentError> {
        let resp = self
            .request("POST", path)
            .send_json(body)
            .map_err(|e| self.fail(what, e))?;
        resp.into_json().map_err(|e| AgentError::Offline {
            url: self.base.clone(),
            problem: format!("the answer to {what} was cut off or not JSON: {e}"),
        })
    }

    /// Registers, sending the device's X25519 public key (standard base64)
    /// when given.
    pub fn register(
        &self,
        app_key: &str,
        channel: Option<String>,
        public_key: Option<String>,
    ) -> Result<RegisterResponse, AgentError> {
        self.post(
            "/v1/devices/register",
            "registration",
            &RegisterRequest {
                app_key: app_key.to_string(),
                channel,
                public_key,
            },
        )
    }

    pub fn check_in(&self, profile: &DeviceProfile) -> Result<CheckInResponse, AgentError> {
        self.post(
            "/v1/devices/check-in",
            "the check-in",
            &CheckInRequest {
                profile: profile.clone(),
            },
        )
    }

    /// Asks for the content key of a sealed blob (`POST /v1/content-keys`).
    pub fn content_key(&self, req: &KeyRequest) -> Result<KeyGrant, AgentError> {
        self.post("/v1/content-keys", "the content-key request", req)
    }

    pub fn send_telemetry(&self, batch: &TelemetryBatch) -> Result<TelemetryAck, AgentError> {
        self.post("/v1/telemetry", "a telemetry batch", batch)
    }

    /// Downloads `digest` (`length` bytes) into the store, resuming from
    /// what an earlier attempt left, and finalizes it (length and hash
    /// checked). A hash mismatch deletes the partial file.
    pub fn download(
        &self,
        store: &Store,
        model: &ModelName,
        digest: &Digest,
        length: u64,
    ) -> Result<Fetched, AgentError> {
        let fail = |problem: String| AgentError::Download {
            model: model.clone(),
            digest: *digest,
            problem,
        };
        let mut partial = store.open_partial(digest, length)?;
        let resumed_from = partial.present();
        let crash_at: Option<u64> = crash_value("download").and_then(|v| v.parse().ok());
        let mut transferred = 0u64;
        if partial.remaining() > 0 {
            let range = format!("bytes={}-", partial.present());
            let mut resp = self
                .request("GET", &format!("/v1/artifacts/{digest}"))
                .set("range", &range)
                .call()
                .map_err(|e| self.fail("an artifact download", e))?;
            if (300..400).contains(&resp.status()) {
                // The bytes are elsewhere (a pre-signed object-store URL,
                // which carries its own authorisation: the fleet's token
                // stays here).
                let location = resp.header("location").unwrap_or_default().to_string();
                if location.is_empty() {
                    return Err(fail(format!(
                        "the fleet answered {} without a Location",
                        resp.status()
                    )));
                }
                resp = self
                    .agent
                    .get(&location)
                    .set("range", &range)
                    .call()
                    .map_err(|e| object_store_error(&location, e))?;
            }
            let status = resp.status();
            if status != 206 && !(status == 200 && resumed_from == 0) {
                return Err(fail(format!(
                    "asked for bytes {resumed_from}- and got status {status}"
                )));
            }
            let mut body = resp.into_reader();
            let mut buf = vec![0u8; 64 * 1024];
            let started = Instant::now();
            let mut progress = Progress::new(length, resumed_from, &digest.to_string());
            let mut since_sync = 0u64;
            loop {
                let want = buf
                    .len()
                    .min(usize::try_from(partial.remaining()).unwrap_or(usize::MAX));
                if want == 0 {
                    break;
                }
                let n = match body.read(&mut buf[..want]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        partial.sync()?;
                        return Err(AgentError::Offline {
                            url: self.base.clone(),
                            problem: format!(
                                "the download of {digest} broke off after {} of {length} bytes ({e}); it resumes from there",
                                partial.present()
                            ),
                        });
                    }
                };
                partial.append(&buf[..n])?;
                transferred += n as u64;
                since_sync += n as u64;
                if since_sync >= 4 << 20 {
                    partial.sync()?;
                    since_sync = 0;
                }
                if let Some(at) = crash_at {
                    if partial.present() >= at {
                        partial.sync()?;
                        eprintln!("OUTPOST_CRASH_AT: crashing at download={at}");
                        std::process::abort();
                    }
                }
                progress.show(partial.present());
                if let Some(cap) = self.bandwidth_cap {
                    let due = Duration::from_secs_f64(transferred as f64 / cap.max(1) as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            progress.done();
            partial.sync()?;
            if partial.remaining() > 0 {
                return Err(AgentError::Offline {
                    url: self.base.clone(),
                    problem: format!(
                        "the download of {digest} ended after {} of {length} bytes; it resumes from there",
                        partial.present()
                    ),
                });
            }
            // More bytes than promised: the file would not match anyway.
            if body.read(&mut buf[..1]).map(|n| n > 0).unwrap_or(false) {
                store.discard_partial(digest)?;
                return Err(fail(format!(
                    "the server sent more than the {length} bytes the manifest names; discarded"
                )));
            }
        }
        partial.finalize().map_err(|e| match e {
            outpost_store::StoreError::HashMismatch { actual, .. } => fail(format!(
                "the {length} downloaded bytes hash to {actual}, not to the manifest's digest (tampered or damaged in transit); discarded"
            )),
            other => other.into(),
        })?;
        Ok(Fetched {
            resumed_from,
            transferred,
        })
    }
}

/// The download's bar (bytes, rate, ETA) on stderr when it is a terminal;
/// otherwise one plain line when it starts and one when it ends, so that
/// logs stay readable.
struct Progress {
    bar: indicatif::ProgressBar,
    started: Instant,
    from: u64,
}

impl Progress {
    fn new(total: u64, from: u64, digest: &str) -> Progress {
        let short = digest.get(..19).unwrap_or(digest);
        let bar = indicatif::ProgressBar::new(total);
        if bar.is_hidden() {
            tracing::info!(artifact = %digest, bytes = total, resume_from = from, "downloading");
        } else {
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "  {prefix} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(short.to_string());
            bar.set_position(from);
        }
        Progress {
            bar,
            started: Instant::now(),
            from,
        }
    }

    fn show(&mut self, done: u64) {
        self.bar.set_position(done);
    }

    fn done(&self) {
        if self.bar.is_hidden() {
            let secs = self.started.elapsed().as_secs_f64();
            let moved = self.bar.position().saturating_sub(self.from);
            tracing::info!(
                bytes = moved,
                seconds = secs,
                "downloaded {:.1} MB at {:.1} MB/s",
                moved as f64 / 1e6,
                moved as f64 / 1e6 / secs.max(1e-3)
            );
        } else {
            self.bar.finish_and_clear();
        }
    }
}

/// A failed download from the object store a fleet sent us to: retried
/// later like an offline fleet, and said without the pre-signed URL's
/// query (its signature and credential stay out of logs).
fn object_store_error(location: &str, e: ureq::Error) -> AgentError {
    let place = location.split('?').next().unwrap_or_default().to_string();
    let problem = match e {
        ureq::Error::Status(status, _) => {
            format!("the object store answered {status} (an expired or refused pre-signed URL is renewed at the next attempt)")
        }
        ureq::Error::Transport(t) => format!("the object store did not answer ({})", t.kind()),
    };
    AgentError::Offline {
        url: place,
        problem,
    }
}
