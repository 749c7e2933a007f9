//! Admin routes (behind the admin token): thin wrappers over `admin.rs`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use outpost_protocol::manifest::ModelName;
use serde::Deserialize;

use super::{actor, JsonBody};
use crate::api::{
    ActionBody, AppKeyView, ChannelView, CreateAppKey, CreateChannel, CreateRollout, DeviceList,
    DeviceView, KillSwitch, MoveDevice, Pin, ReleaseRef, ReleaseView, Revoke, RolloutView,
    SetChannelRelease, StatusView,
};
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

fn ok() -> Json<serde_json::Value> {
    Json(serde_json::json!({"ok": true}))
}

pub async fn publish(
    State(f): Fl,
    h: HeaderMap,
    JsonBody(meta): JsonBody<ReleaseMeta>,
) -> Result<(StatusCode, Json<crate::state::Release>), FleetError> {
    Ok((
        StatusCode::CREATED,
        Json(f.publish(&actor(&h), meta).await?),
    ))
}

pub async fn releases(State(f): Fl) -> Json<Vec<ReleaseView>> {
    Json(f.releases())
}

pub async fn release(State(f): Fl, Path((m, v)): Path<(String, String)>) -> Res<ReleaseView> {
    let m = model(&m)?;
    f.releases()
        .into_iter()
        .find(|r| r.release.meta.model == m && r.release.meta.version == v)
        .map(Json)
        .ok_or_else(|| FleetError::NotFound(format!("release {m}@{v} does not exist")))
}

pub async fn revoke(
    State(f): Fl,
    h: HeaderMap,
    JsonBody(r): JsonBody<Revoke>,
) -> Res<serde_json::Value> {
    let rr = ReleaseRef {
        model: r.model,
        version: r.version,
    };
    f.revoke(&actor(&h), &rr, &r.reason).await?;
    Ok(ok())
}

pub async fn kill_switch(
    State(f): Fl,
    h: HeaderMap,
    JsonBody(k): JsonBody<KillSwitch>,
) -> Res<StatusView> {
    f.kill_switch(&actor(&h), k).await?;
    Ok(Json(f.status()))
}

pub async fn channels(State(f): Fl) -> Json<Vec<ChannelView>> {
    Json(f.status().channels)
}

pub async fn create_channel(
    State(f): Fl,
    h: HeaderMap,
    JsonBody(c): JsonBody<CreateChannel>,
) -> Result<(StatusCode, Json<serde_json::Value>), FleetError> {
    f.create_channel(&actor(&h), &c.name).await?;
    Ok((StatusCode::CREATED, ok()))
}

pub async fn set_channel_release(
    State(f): Fl,
    h: HeaderMap,
    Path(name): Path<String>,
    JsonBody(r): JsonBody<SetChannelRelease>,
) -> Res<serde_json::Value> {
    let rr = ReleaseRef {
        model: r.model,
        version: r.version,
    };
    f.set_channel_release(&actor(&h), &name, &rr).await?;
    Ok(ok())
}

pub async fn rollouts(State(f): Fl) -> Json<Vec<RolloutView>> {
    Json(f.rollouts())
}

fn rollout_id(s: &str) -> Result<u64, FleetError> {
    s.parse()
        .map_err(|_| FleetError::BadRequest(format!("rollout id {s:?} is not a number")))
}

pub async fn rollout(State(f): Fl, Path(id): Path<String>) -> Res<RolloutView> {
    Ok(Json(f.rollout(rollout_id(&id)?)?))
}

pub async fn create_rollout(
    State(f): Fl,
    h: HeaderMap,
    JsonBody(r): JsonBody<CreateRollout>,
) -> Result<(StatusCode, Json<RolloutView>), FleetError> {
    Ok((
        StatusCode::CREATED,
        Json(f.create_rollout(&actor(&h), r).await?),
    ))
}

pub async fn rollout_action(
    State(f): Fl,
    h: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    JsonBody(b): JsonBody<ActionBody>,
) -> Res<RolloutView> {
    let id = rollout_id(&id)?;
    let action = RolloutAction::parse(&action).ok_or_else(|| {
        FleetError::NotFound(format!(
            "unknown rollout action {action:?}; use advance, pause, resume, complete or rollback"
        ))
    })?;
    Ok(Json(
        f.rollout_action(&actor(&h), id, action, b.reason).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    channel: Option<String>,
    class: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

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

pub async fn device(State(f): Fl, Path(id): Path<String>) -> Res<DeviceView> {
    Ok(Json(f.device(&id)?))
}

pub async fn pin(
    State(f): Fl,
    h: HeaderMap,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<Pin>,
) -> Res<DeviceView> {
    let rr = ReleaseRef {
        model: p.model.clone(),
        version: p.version,
    };
    f.pin(&actor(&h), &id, Some(&rr), &p.model).await?;
    Ok(Json(f.device(&id)?))
}

pub async fn unpin(
    State(f): Fl,
    h: HeaderMap,
    Path((id, m)): Path<(String, String)>,
) -> Res<DeviceView> {
    let m = model(&m)?;
    f.pin(&actor(&h), &id, None, &m).await?;
    Ok(Json(f.device(&id)?))
}

pub async fn move_device(
    State(f): Fl,
    h: HeaderMap,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<MoveDevice>,
) -> Res<DeviceView> {
    f.move_device(&actor(&h), &id, &b.channel).await?;
    Ok(Json(f.device(&id)?))
}

pub async fn create_app_key(
    State(f): Fl,
    h: HeaderMap,
    JsonBody(b): JsonBody<CreateAppKey>,
) -> Result<(StatusCode, Json<AppKeyView>), FleetError> {
    Ok((
        StatusCode::CREATED,
        Json(f.create_app_key(&actor(&h), &b.label).await?),
    ))
}

pub async fn status(State(f): Fl) -> Json<StatusView> {
    Json(f.status())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<u32>,
    before: Option<u64>,
}

pub async fn audit(
    State(f): Fl,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Res<Vec<AuditRecord>> {
    let Query(q) = q.map_err(|e| FleetError::BadRequest(format!("query string: {e}")))?;
    Ok(Json(f.audit_log(q.limit.unwrap_or(100), q.before).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortQuery {
    minutes: Option<u64>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FragmentationQuery {
    stale_days: Option<u64>,
}

pub async fn fragmentation(
    State(f): Fl,
    q: Result<Query<FragmentationQuery>, axum::extract::rejection::QueryRejection>,
) -> Res<crate::fragmentation::FragmentationView> {
    let Query(q) = q.map_err(|e| FleetError::BadRequest(format!("query string: {e}")))?;
    Ok(Json(f.fragmentation(q.stale_days.unwrap_or(7))))
}
