//! Device routes: signing keys, registration, check-in, telemetry.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use outpost_protocol::fleet::{
    CheckInRequest, CheckInResponse, KeyGrant, KeyRequest, RegisterRequest, RegisterResponse,
};
use outpost_protocol::signing::PinnedKey;
use outpost_protocol::telemetry::{TelemetryAck, TelemetryBatch};

use super::{bearer, JsonBody};
use crate::error::FleetError;
use crate::Fleet;

/// The keys manifests are signed with, for provisioning devices.
#[utoipa::path(get, path = "/v1/keys", tag = "device", summary = "The key(s) manifests are signed with, for provisioning", responses((status = 200, description = "Pinned keys", body = Vec<PinnedKey>)))]
pub async fn keys(State(fleet): State<Arc<Fleet>>) -> Json<Vec<PinnedKey>> {
    Json(vec![fleet.signer().pinned_key()])
}

#[utoipa::path(post, path = "/v1/devices/register", tag = "device", summary = "Register a device with an app key", request_body = RegisterRequest, responses((status = 200, description = "The device id and its token (shown once)", body = RegisterResponse), super::Errors))]
pub async fn register(
    State(fleet): State<Arc<Fleet>>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Json<RegisterResponse>, FleetError> {
    Ok(Json(fleet.register(req).await?))
}

#[utoipa::path(post, path = "/v1/devices/check-in", tag = "device", security(("device" = [])), summary = "Report the device profile; get a signed manifest per assigned model", request_body = CheckInRequest, responses((status = 200, description = "What the device should run", body = CheckInResponse), super::Errors))]
pub async fn check_in(
    State(fleet): State<Arc<Fleet>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<CheckInResponse>, FleetError> {
    // Authenticate before parsing: a stranger learns nothing about the body.
    let token = bearer(&headers)?;
    let req: CheckInRequest = super::parse_json(&body.map_err(super::body_error)?)?;
    let answer = fleet.check_in(token, req).await?;
    let m = fleet.metrics();
    m.check_ins.inc();
    m.manifests.inc_by(
        answer
            .models
            .iter()
            .filter(|a| a.manifest.is_some())
            .count() as u64,
    );
    Ok(Json(answer))
}

#[utoipa::path(post, path = "/v1/telemetry", tag = "device", security(("device" = [])), summary = "Send a batch of telemetry events (at most 1 MiB; idempotent by batch id)", request_body = TelemetryBatch, responses((status = 200, description = "What was counted", body = TelemetryAck), super::Errors))]
pub async fn telemetry(
    State(fleet): State<Arc<Fleet>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<TelemetryAck>, FleetError> {
    let token = bearer(&headers)?;
    let batch: TelemetryBatch = super::parse_json(&body.map_err(super::body_error)?)?;
    let events = u32::try_from(batch.events.len()).unwrap_or(u32::MAX);
    let m = fleet.metrics();
    match fleet.ingest(token, batch).await {
        Ok(ack) => {
            if ack.duplicate {
                m.telemetry("duplicate", events);
            }
            m.telemetry("accepted", ack.accepted);
            m.telemetry("too_old", ack.too_old);
            m.telemetry("unknown_release", ack.unknown_release);
            Ok(Json(ack))
        }
        Err(e) => {
            m.telemetry("refused", events);
            Err(e)
        }
    }
}

#[utoipa::path(post, path = "/v1/content-keys", tag = "device", security(("device" = [])), summary = "The content key of a sealed variant this device was assigned, wrapped to its public key (HPKE)", request_body = KeyRequest, responses((status = 200, description = "The wrapped key and its grant", body = KeyGrant), super::Errors))]
pub async fn content_key(
    State(fleet): State<Arc<Fleet>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<KeyGrant>, FleetError> {
    let token = bearer(&headers)?;
    let req: KeyRequest = super::parse_json(&body.map_err(super::body_error)?)?;
    Ok(Json(fleet.grant_content_key(token, req).await?))
}
