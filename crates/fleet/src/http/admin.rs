//! Admin routes (behind the admin auth: a role per route, `access.rs`): thin
//! wrappers over `admin.rs`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use outpost_protocol::manifest::ModelName;
use serde::Deserialize;

use super::JsonBody;
use crate::access::Principal;
use crate::api::{
    ActionBody, AppKeyView, ChannelView, CreateAppKey, CreateChannel, CreateRollout, DeviceList,
    DeviceView, Done, KillSwitch, MoveDevice, Pin, ReleaseRef, ReleaseView, Revoke, RolloutView,
    SetChannelRelease, StatusView,
};
use crate::apps::scope;
use crate::db::AuditRecord;
use crate::error::FleetError;
use crate::meta::ReleaseMeta;
use crate::rollout::RolloutAction;
use crate::Fleet;

type Res<T> = Result<Json<T>, FleetError>;
type Fl = State<Arc<Fleet>>;

fn model(s: &str) -> Result<ModelName, FleetError> {
    ModelName::parse(s).map_err(|e| FleetError::BadRequest(e.to_string()))
}

fn ok() -> Json<Done> {
    Json(Done { ok: true })
}

#[utoipa::path(post, path = "/admin/v1/releases", security(("admin" = [])), tag = "admin", summary = "Publish a release (its blobs must be uploaded first)", request_body = ReleaseMeta, responses((status = 201, description = "The release, signed", body = crate::state::Release), super::Errors))]
pub async fn publish(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    JsonBody(meta): JsonBody<ReleaseMeta>,
) -> Result<(StatusCode, Json<crate::state::Release>), FleetError> {
    scope(&p, "app", Some(&meta.app))?;
    Ok((StatusCode::CREATED, Json(f.publish(&p.actor, meta).await?)))
}

#[utoipa::path(get, path = "/admin/v1/releases", security(("admin" = [])), tag = "admin", summary = "Every release, with where it runs", responses((status = 200, description = "The releases", body = Vec<ReleaseView>), super::Errors))]
pub async fn releases(State(f): Fl) -> Json<Vec<ReleaseView>> {
    Json(f.releases())
}

#[utoipa::path(get, path = "/admin/v1/releases/{model}/{version}", security(("admin" = [])), tag = "admin", summary = "One release", params(("model" = String, Path, description = "Model name"), ("version" = String, Path, description = "Release version")), responses((status = 200, description = "The release", body = ReleaseView), super::Errors))]
pub async fn release(State(f): Fl, Path((m, v)): Path<(String, String)>) -> Res<ReleaseView> {
    let m = model(&m)?;
    f.releases()
        .into_iter()
        .find(|r| r.release.meta.model == m && r.release.meta.version == v)
        .map(Json)
        .ok_or_else(|| FleetError::NotFound(format!("release {m}@{v} does not exist")))
}

#[utoipa::path(post, path = "/admin/v1/revoke", security(("admin" = [])), tag = "admin", summary = "Revoke a release: devices drop it at their next check-in", request_body = Revoke, responses((status = 200, description = "Revoked", body = Done), super::Errors))]
pub async fn revoke(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    JsonBody(r): JsonBody<Revoke>,
) -> Res<Done> {
    let what = format!("model {}", r.model);
    scope(&p, &what, f.app_of_model(&r.model).as_deref())?;
    let rr = ReleaseRef {
        model: r.model,
        version: r.version,
    };
    f.revoke(&p.actor, &rr, &r.reason).await?;
    Ok(ok())
}

#[utoipa::path(post, path = "/admin/v1/kill-switch", security(("admin" = [])), tag = "admin", summary = "Freeze (or thaw) every rollout and channel change", request_body = KillSwitch, responses((status = 200, description = "The fleet's status after the change", body = StatusView), super::Errors))]
pub async fn kill_switch(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    JsonBody(k): JsonBody<KillSwitch>,
) -> Res<StatusView> {
    f.kill_switch(&p.actor, k).await?;
    Ok(Json(f.status()))
}

#[utoipa::path(get, path = "/admin/v1/channels", security(("admin" = [])), tag = "admin", summary = "The channels and what each runs", responses((status = 200, description = "The channels", body = Vec<ChannelView>), super::Errors))]
pub async fn channels(State(f): Fl) -> Json<Vec<ChannelView>> {
    Json(f.status().channels)
}

#[utoipa::path(post, path = "/admin/v1/channels", security(("admin" = [])), tag = "admin", summary = "Create a channel", request_body = CreateChannel, responses((status = 201, description = "Created", body = Done), super::Errors))]
pub async fn create_channel(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    JsonBody(c): JsonBody<CreateChannel>,
) -> Result<(StatusCode, Json<Done>), FleetError> {
    f.create_channel(&p.actor, &c.name).await?;
    Ok((StatusCode::CREATED, ok()))
}

#[utoipa::path(post, path = "/admin/v1/channels/{name}/release", security(("admin" = [])), tag = "admin", summary = "Put a channel on a release at once (no stages)", params(("name" = String, Path, description = "Channel name")), request_body = SetChannelRelease, responses((status = 200, description = "Done", body = Done), super::Errors))]
pub async fn set_channel_release(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    JsonBody(r): JsonBody<SetChannelRelease>,
) -> Res<Done> {
    let what = format!("model {}", r.model);
    scope(&p, &what, f.app_of_model(&r.model).as_deref())?;
    let rr = ReleaseRef {
        model: r.model,
        version: r.version,
    };
    f.set_channel_release(&p.actor, &name, &rr).await?;
    Ok(ok())
}

#[utoipa::path(get, path = "/admin/v1/rollouts", security(("admin" = [])), tag = "admin", summary = "Every rollout", responses((status = 200, description = "The rollouts", body = Vec<RolloutView>), super::Errors))]
pub async fn rollouts(State(f): Fl) -> Json<Vec<RolloutView>> {
    Json(f.rollouts())
}

fn rollout_id(s: &str) -> Result<u64, FleetError> {
    s.parse()
        .map_err(|_| FleetError::BadRequest(format!("rollout id {s:?} is not a number")))
}

#[utoipa::path(get, path = "/admin/v1/rollouts/{id}", security(("admin" = [])), tag = "admin", summary = "One rollout", params(("id" = u64, Path, description = "Rollout id")), responses((status = 200, description = "The rollout", body = RolloutView), super::Errors))]
pub async fn rollout(State(f): Fl, Path(id): Path<String>) -> Res<RolloutView> {
    Ok(Json(f.rollout(rollout_id(&id)?)?))
}

#[utoipa::path(post, path = "/admin/v1/rollouts", security(("admin" = [])), tag = "admin", summary = "Start a staged rollout of a release on a channel", request_body = CreateRollout, responses((status = 201, description = "The rollout at its first stage", body = RolloutView), super::Errors))]
pub async fn create_rollout(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    JsonBody(r): JsonBody<CreateRollout>,
) -> Result<(StatusCode, Json<RolloutView>), FleetError> {
    let what = format!("model {}", r.model);
    scope(&p, &what, f.app_of_model(&r.model).as_deref())?;
    Ok((
        StatusCode::CREATED,
        Json(f.create_rollout(&p.actor, r).await?),
    ))
}

#[utoipa::path(post, path = "/admin/v1/rollouts/{id}/{action}", security(("admin" = [])), tag = "admin", summary = "Advance, pause, resume, complete or roll back a rollout", params(("id" = u64, Path, description = "Rollout id"), ("action" = String, Path, description = "advance, pause, resume, complete or rollback")), request_body = ActionBody, responses((status = 200, description = "The rollout after the action", body = RolloutView), super::Errors))]
pub async fn rollout_action(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    Path((id, action)): Path<(String, String)>,
    JsonBody(b): JsonBody<ActionBody>,
) -> Res<RolloutView> {
    let id = rollout_id(&id)?;
    scope(
        &p,
        &format!("rollout {id}"),
        f.app_of_rollout(id).as_deref(),
    )?;
    let action = RolloutAction::parse(&action).ok_or_else(|| {
        FleetError::NotFound(format!(
            "unknown rollout action {action:?}; use advance, pause, resume, complete or rollback"
        ))
    })?;
    Ok(Json(
        f.rollout_action(&p.actor, id, action, b.reason).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    channel: Option<String>,
    class: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[utoipa::path(get, path = "/admin/v1/devices", security(("admin" = [])), tag = "admin", summary = "Devices, filtered and paged", params(DeviceQuery), responses((status = 200, description = "A page of devices", body = DeviceList), super::Errors))]
pub async fn devices(
    State(f): Fl,
    q: Result<Query<DeviceQuery>, axum::extract::rejection::QueryRejection>,
) -> Res<DeviceList> {
    let Query(q) = q.map_err(|e| FleetError::BadRequest(format!("query string: {e}")))?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    Ok(Json(f.list_devices(
        q.channel.as_deref(),
        q.class.as_deref(),
        limit,
        q.offset.unwrap_or(0),
    )))
}

#[utoipa::path(get, path = "/admin/v1/devices/{id}", security(("admin" = [])), tag = "admin", summary = "One device: profile, channel, pins, what it was assigned", params(("id" = String, Path, description = "Device id")), responses((status = 200, description = "The device", body = DeviceView), super::Errors))]
pub async fn device(State(f): Fl, Path(id): Path<String>) -> Res<DeviceView> {
    Ok(Json(f.device(&id)?))
}

#[utoipa::path(post, path = "/admin/v1/devices/{id}/pins", security(("admin" = [])), tag = "admin", summary = "Pin a device to a release of a model", params(("id" = String, Path, description = "Device id")), request_body = Pin, responses((status = 200, description = "The device", body = DeviceView), super::Errors))]
pub async fn pin(
    State(f): Fl,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<Pin>,
) -> Res<DeviceView> {
    scope(
        &who,
        &format!("device {id:?}"),
        f.app_of_device(&id).await?.as_deref(),
    )?;
    let rr = ReleaseRef {
        model: p.model.clone(),
        version: p.version,
    };
    f.pin(&who.actor, &id, Some(&rr), &p.model).await?;
    Ok(Json(f.device(&id)?))
}

#[utoipa::path(delete, path = "/admin/v1/devices/{id}/pins/{model}", security(("admin" = [])), tag = "admin", summary = "Remove a device's pin for a model", params(("id" = String, Path, description = "Device id"), ("model" = String, Path, description = "Model name")), responses((status = 200, description = "The device", body = DeviceView), super::Errors))]
pub async fn unpin(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    Path((id, m)): Path<(String, String)>,
) -> Res<DeviceView> {
    let m = model(&m)?;
    scope(
        &p,
        &format!("device {id:?}"),
        f.app_of_device(&id).await?.as_deref(),
    )?;
    f.pin(&p.actor, &id, None, &m).await?;
    Ok(Json(f.device(&id)?))
}

#[utoipa::path(post, path = "/admin/v1/devices/{id}/channel", security(("admin" = [])), tag = "admin", summary = "Move a device to another channel", params(("id" = String, Path, description = "Device id")), request_body = MoveDevice, responses((status = 200, description = "The device", body = DeviceView), super::Errors))]
pub async fn move_device(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<MoveDevice>,
) -> Res<DeviceView> {
    scope(
        &p,
        &format!("device {id:?}"),
        f.app_of_device(&id).await?.as_deref(),
    )?;
    f.move_device(&p.actor, &id, &b.channel).await?;
    Ok(Json(f.device(&id)?))
}

#[utoipa::path(post, path = "/admin/v1/app-keys", security(("admin" = [])), tag = "admin", summary = "Create an app key (devices register with it; shown once)", request_body = CreateAppKey, responses((status = 201, description = "The key", body = AppKeyView), super::Errors))]
pub async fn create_app_key(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    JsonBody(b): JsonBody<CreateAppKey>,
) -> Result<(StatusCode, Json<AppKeyView>), FleetError> {
    let app = b.app.unwrap_or_else(crate::access::default_app);
    scope(&p, "app", Some(&app))?;
    Ok((
        StatusCode::CREATED,
        Json(f.create_app_key(&p.actor, &b.label, &app).await?),
    ))
}

#[utoipa::path(get, path = "/admin/v1/status", security(("admin" = [])), tag = "admin", summary = "The fleet at a glance", responses((status = 200, description = "Status", body = StatusView), super::Errors))]
pub async fn status(State(f): Fl) -> Json<StatusView> {
    Json(f.status())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<u32>,
    before: Option<u64>,
}

#[utoipa::path(get, path = "/admin/v1/audit", security(("admin" = [])), tag = "admin", summary = "The audit log, newest first", params(AuditQuery), responses((status = 200, description = "Audit records", body = Vec<AuditRecord>), super::Errors))]
pub async fn audit(
    State(f): Fl,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Res<Vec<AuditRecord>> {
    let Query(q) = q.map_err(|e| FleetError::BadRequest(format!("query string: {e}")))?;
    Ok(Json(f.audit_log(q.limit.unwrap_or(100), q.before).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CohortQuery {
    minutes: Option<u64>,
}

#[utoipa::path(get, path = "/admin/v1/cohorts", security(("admin" = [])), tag = "admin", summary = "Telemetry per cohort (release × class × channel) over a window", params(CohortQuery), responses((status = 200, description = "One row a cohort", body = Vec<crate::telemetry::CohortView>), super::Errors))]
pub async fn cohorts(
    State(f): Fl,
    q: Result<Query<CohortQuery>, axum::extract::rejection::QueryRejection>,
) -> Res<Vec<crate::telemetry::CohortView>> {
    let Query(q) = q.map_err(|e| FleetError::BadRequest(format!("query string: {e}")))?;
    let minutes = q.minutes.unwrap_or(60);
    if minutes == 0 || minutes > 7 * 24 * 60 {
        return Err(FleetError::BadRequest(format!(
            "minutes={minutes}; give 1-10080"
        )));
    }
    Ok(Json(f.cohorts(minutes)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// The window (1-10080 minutes; default 1440).
    minutes: Option<u64>,
    /// Minutes per point (default: the window / 48, at least 1).
    step: Option<u64>,
    /// Only this device class's cohorts.
    class: Option<String>,
    /// Only this channel's cohorts.
    channel: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/cohorts/series", security(("admin" = [])), tag = "admin", summary = "Telemetry per release as a time series (optionally one class or channel)", params(SeriesQuery), responses((status = 200, description = "One line a release", body = Vec<crate::telemetry::SeriesLine>), super::Errors))]
pub async fn cohort_series(
    State(f): Fl,
    q: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Res<Vec<crate::telemetry::SeriesLine>> {
    let Query(q) = q.map_err(|e| FleetError::BadRequest(format!("query string: {e}")))?;
    let minutes = q.minutes.unwrap_or(1440);
    if minutes == 0 || minutes > 7 * 24 * 60 {
        return Err(FleetError::BadRequest(format!(
            "minutes={minutes}; give 1-10080"
        )));
    }
    let step = q.step.unwrap_or((minutes / 48).max(1));
    if step == 0 || step > minutes {
        return Err(FleetError::BadRequest(format!(
            "step={step}; give 1 to minutes ({minutes})"
        )));
    }
    Ok(Json(f.cohort_series(
        minutes,
        step,
        q.class.as_deref(),
        q.channel.as_deref(),
    )))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FragmentationQuery {
    stale_days: Option<u64>,
}

#[utoipa::path(get, path = "/admin/v1/fragmentation", security(("admin" = [])), tag = "admin", summary = "Devices per release × channel × class, and how far rollouts reach", params(FragmentationQuery), responses((status = 200, description = "The matrix", body = crate::fragmentation::FragmentationView), super::Errors))]
pub async fn fragmentation(
    State(f): Fl,
    q: Result<Query<FragmentationQuery>, axum::extract::rejection::QueryRejection>,
) -> Res<crate::fragmentation::FragmentationView> {
    let Query(q) = q.map_err(|e| FleetError::BadRequest(format!("query string: {e}")))?;
    Ok(Json(f.fragmentation(q.stale_days.unwrap_or(7))))
}

/// `PUT /admin/v1/content-keys/{digest}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutContentKey {
    /// 32 bytes, standard base64.
    pub key: String,
}

#[utoipa::path(put, path = "/admin/v1/content-keys/{digest}", security(("admin" = [])), tag = "admin", summary = "Set a sealed blob's content key (never shown again; released only wrapped to entitled devices)", params(("digest" = String, Path, description = "The sealed blob's sha256:<hex>")), request_body = PutContentKey, responses((status = 200, description = "Stored", body = Done), super::Errors))]
pub async fn put_content_key(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    Path(digest): Path<String>,
    JsonBody(b): JsonBody<PutContentKey>,
) -> Res<Done> {
    let digest = outpost_protocol::Digest::parse(&digest)
        .map_err(|e| FleetError::BadRequest(format!("digest: {e}")))?;
    // A blob belongs to the apps of the releases that use it. One no
    // release uses yet (its key is set before publishing) belongs to none:
    // a token scoped to apps may give it a key, never replace one.
    for app in f.apps_of_blob(&digest) {
        scope(&p, "blob", Some(&app))?;
    }
    let replace = p.apps.is_none();
    f.put_content_key(&p.actor, digest, &b.key, replace).await?;
    Ok(ok())
}

#[utoipa::path(post, path = "/admin/v1/devices/{id}/revoke", security(("admin" = [])), tag = "admin", summary = "Revoke a device: no content key is released to it any more", params(("id" = String, Path, description = "Device id")), responses((status = 200, description = "Revoked", body = Done), super::Errors))]
pub async fn revoke_device(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Res<Done> {
    scope(
        &p,
        &format!("device {id:?}"),
        f.app_of_device(&id).await?.as_deref(),
    )?;
    f.revoke_device(&p.actor, &id).await?;
    Ok(ok())
}
