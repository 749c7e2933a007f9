//! The admin API's bodies: requests (strict: unknown fields are refused by
//! name) and views (what the API answers and the CLI prints).

use std::collections::BTreeMap;

use outpost_protocol::fleet::{Blocked, DeviceProfile};
use outpost_protocol::manifest::ModelName;
use outpost_protocol::Timestamp;
use serde::{Deserialize, Serialize};

use crate::rollout::{percent_of, Rollout, Target};
use crate::state::{Freeze, Release};

/// `model@version`, as the CLI writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRef {
    pub model: ModelName,
    pub version: String,
}

impl ReleaseRef {
    /// Parses `model@version`.
    pub fn parse(s: &str) -> Result<ReleaseRef, String> {
        let Some((m, v)) = s.split_once('@') else {
            return Err(format!(
                "{s:?} is not MODEL@VERSION (e.g. smollm2-135m@2025-06)"
            ));
        };
        let model = ModelName::parse(m).map_err(|e| e.to_string())?;
        if v.is_empty() {
            return Err(format!("{s:?} has no version after '@'"));
        }
        Ok(ReleaseRef {
            model,
            version: v.to_string(),
        })
    }
}

impl std::fmt::Display for ReleaseRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.model, self.version)
    }
}

/// `POST /admin/v1/channels`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    pub name: String,
}

/// `POST /admin/v1/channels/{channel}/release`: the channel runs this
/// release now, for every device (no stages).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetChannelRelease {
    pub model: ModelName,
    pub version: String,
}

/// `POST /admin/v1/rollouts`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRollout {
    pub model: ModelName,
    pub version: String,
    pub channel: String,
    /// Percentages, rising, e.g. `[1, 5, 25, 100]`.
    pub stages: Vec<f64>,
    /// Seconds each stage runs before the next (0: advance only by hand).
    pub soak_s: u64,
    #[serde(default)]
    pub target: Target,
}

/// `POST /admin/v1/rollouts/{id}/{action}`, body optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /admin/v1/devices/{id}/pins`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub model: ModelName,
    pub version: String,
}

/// `POST /admin/v1/devices/{id}/channel`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveDevice {
    pub channel: String,
}

/// `POST /admin/v1/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    pub model: ModelName,
    pub version: String,
    pub reason: String,
}

/// `POST /admin/v1/kill-switch`: freeze every rollout (or thaw with
/// `freeze: false`), revoking releases in the same step.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KillSwitch {
    pub freeze: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub revoke: Vec<ReleaseRef>,
}

/// `POST /admin/v1/app-keys`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppKey {
    pub label: String,
    /// The app whose devices register with it (default `default`): they
    /// are offered only that app's releases.
    #[serde(default)]
    pub app: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppKeyView {
    pub label: String,
    pub app: String,
    /// Shown once; the fleet keeps its SHA-256.
    pub app_key: String,
}

/// A release as listed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseView {
    #[serde(flatten)]
    pub release: Release,
    /// Channels whose current release this is.
    pub channels: Vec<String>,
    /// Devices whose last manifest for the model is this release.
    pub devices: u64,
    /// Devices that skipped it as not loadable at their last check-in.
    pub blocked_devices: u64,
}

/// A rollout with its share in percent and the devices it holds.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolloutView {
    #[serde(flatten)]
    pub rollout: Rollout,
    pub percent: f64,
    pub stages: Vec<f64>,
    /// When the current stage advances by itself (active rollouts with a soak).
    pub next_advance_at: Option<Timestamp>,
    /// Devices whose last manifest came from this rollout's release.
    pub devices_on_release: u64,
    /// Devices that could not load it at their last check-in.
    pub blocked_devices: u64,
}

impl RolloutView {
    pub fn of(r: &Rollout, devices_on_release: u64, blocked_devices: u64) -> RolloutView {
        RolloutView {
            percent: percent_of(r.percent_bp()),
            stages: r.stages_bp.iter().map(|&b| percent_of(b)).collect(),
            next_advance_at: (r.state == crate::rollout::RolloutState::Active && r.soak_s > 0)
                .then(|| {
                    Timestamp::from_unix_seconds(r.stage_started_at.unix_seconds() + r.soak_s)
                }),
            rollout: r.clone(),
            devices_on_release,
            blocked_devices,
        }
    }
}

/// A channel and what it runs now, per model.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelView {
    pub name: String,
    pub releases: BTreeMap<String, String>,
    pub devices: u64,
}

/// A device as listed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceView {
    pub id: String,
    /// The app it registered for (its app key's).
    #[serde(default)]
    pub app: String,
    pub channel: String,
    pub registered_at: Timestamp,
    /// The device's X25519 public key (standard base64), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    pub last_seen_at: Option<Timestamp>,
    pub profile: Option<DeviceProfile>,
    pub pins: BTreeMap<String, String>,
    /// Model → (release, manifest_version) last issued.
    pub assigned: BTreeMap<String, Assigned>,
    pub blocked: BTreeMap<String, Vec<Blocked>>,
    /// Every release it was ever issued, when first, oldest first: its
    /// install history as the fleet saw it.
    #[serde(default)]
    pub history: Vec<FirstIssued>,
}

/// A release first issued to a device.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FirstIssued {
    pub model: String,
    pub model_version: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Assigned {
    pub model_version: String,
    pub manifest_version: u64,
    pub expires_at: Timestamp,
}

/// `GET /admin/v1/devices` answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceList {
    pub total: u64,
    pub devices: Vec<DeviceView>,
}

/// `GET /admin/v1/status`: the whole fleet on one page.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusView {
    pub key_id: String,
    /// This fleet seals every release (`--seal-releases`); `outpost fleet
    /// publish` encrypts by default here.
    #[serde(default)]
    pub seal_releases: bool,
    pub frozen: Option<Freeze>,
    pub devices: u64,
    /// Devices online, as this replica knows them (replicas sharing a
    /// database: a device counts here once it has been seen here):
    /// checked in within [`StatusView::online_window_s`]
    /// (two check-in intervals, so a device that missed one check-in still
    /// counts; one that missed two does not).
    #[serde(default)]
    pub online_devices: u64,
    /// The window `online_devices` counts (seconds): twice the interval the
    /// fleet tells devices to check in at (`check_in_after_s`).
    #[serde(default)]
    pub online_window_s: u64,
    /// Devices skipping at least one release as not loadable.
    pub blocked_devices: u64,
    pub channels: Vec<ChannelView>,
    pub rollouts: Vec<RolloutView>,
    pub releases: Vec<ReleaseView>,
    /// Telemetry per release over the last hour (all cohorts merged).
    #[serde(default)]
    pub telemetry: Vec<ReleaseTelemetry>,
    /// The fleet process's memory (Linux only; `null` elsewhere).
    #[serde(default)]
    pub memory: Option<ProcessMemory>,
}

/// One release's telemetry over a window, every class and channel merged:
/// the dashboard line of `outpost fleet status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseTelemetry {
    pub model: String,
    pub model_version: String,
    pub minutes: u64,
    /// Distinct devices that reported in the window (a device counts once
    /// per class and channel it reported from; since the fleet started).
    pub devices: u64,
    pub inferences: u64,
    /// Embedding requests (an embedding release serves only these).
    #[serde(default)]
    pub embeddings: u64,
    /// Failed requests per request (generations and embedding requests).
    pub error_rate: f64,
    pub latency_ms_p95: Option<f64>,
    pub tok_s_p50: Option<f64>,
}

/// Resident memory of a process, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProcessMemory {
    /// VmRSS.
    pub rss_bytes: u64,
    /// VmHWM: the peak since the process started.
    pub peak_rss_bytes: u64,
}

impl ProcessMemory {
    /// This process's memory; `None` where `/proc` is not there.
    pub fn current() -> Option<ProcessMemory> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |field: &str| -> Option<u64> {
            let line = s.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        };
        Some(ProcessMemory {
            rss_bytes: kib("VmRSS:")? * 1024,
            peak_rss_bytes: kib("VmHWM:")? * 1024,
        })
    }
}

/// The answer of an admin action that has nothing else to say.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

/// `PUT /admin/v1/blobs/{digest}`: the blob is in the store.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stored {
    pub digest: outpost_protocol::Digest,
    /// False when the blob was already there (nothing was written).
    pub stored: bool,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// Always "ok" while the process answers.
    pub status: String,
}

/// `POST /admin/v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    pub role: crate::access::Role,
    /// At least 12 characters; stored only as an argon2id hash.
    pub password: String,
}

/// A console user as listed (never the password hash).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    pub name: String,
    pub role: crate::access::Role,
    pub created_at: u64,
    /// Consecutive failed logins.
    pub failed_logins: u32,
    /// Logins refused until then (unix seconds), after repeated failures.
    pub locked_until: Option<u64>,
}

/// `POST /admin/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What it is for, e.g. `ci-deploy`.
    pub name: String,
    pub role: crate::access::Role,
    /// 1-365 days (default 90).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// The apps it may change (releases of their models, their devices,
    /// rollouts, experiments, app keys, content keys of their blobs);
    /// left out: every app. A token scoped to apps may read the whole
    /// fleet but change nothing fleet-wide (channels, kill switch, users,
    /// tokens), and may give a blob no release uses yet a content key but
    /// not replace one.
    #[serde(default)]
    pub apps: Option<Vec<String>>,
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: crate::access::Role,
    pub created_by: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub revoked_at: Option<u64>,
    /// Usable now: not revoked, not expired.
    pub live: bool,
    /// The apps it may change; empty: every app.
    #[serde(default)]
    pub apps: Vec<String>,
}

/// A new API token: the secret is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub view: TokenView,
    /// `Authorization: Bearer <token>`; the fleet keeps its SHA-256.
    pub token: String,
}

/// `POST /console/v1/login`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub name: String,
    pub password: String,
}

/// A signed-in session (the session itself is the HttpOnly cookie).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginView {
    pub user: String,
    pub role: crate::access::Role,
    /// Send as `X-CSRF-Token` with every change made under this session.
    pub csrf_token: String,
    pub expires_at: u64,
}

/// `GET /admin/v1/whoami`: who this request acts as.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub actor: String,
    pub role: crate::access::Role,
    /// Signed in with a console session (changes need the CSRF token).
    pub session: bool,
    /// The apps a token is scoped to; absent: every app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps: Option<Vec<String>>,
}
