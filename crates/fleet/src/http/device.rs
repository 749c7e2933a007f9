//! Device routes: signing keys, registration, check-in, telemetry.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use outpost_protocol::fleet::{CheckInRequest, CheckInResponse, RegisterRequest, RegisterResponse};
use outpost_protocol::signing::PinnedKey;
use outpost_protocol::telemetry::{TelemetryAck, TelemetryBatch};

use super::{bearer, JsonBody};
use crate::error::FleetError;
use crate::Fleet;

/// The keys manifests are signed with, for provisioning devices.
pub async fn keys(State(fleet): State<Arc<Fleet>>) -> Json<Vec<PinnedKey>> {
    Json(vec![fleet.signer().pinned_key()])
}

pub async fn register(
    State(fleet): State<Arc<Fleet>>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Json<RegisterResponse>, FleetError> {
    Ok(Json(fleet.register(req).await?))
}

pub async fn check_in(
    State(fleet): State<Arc<Fleet>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<CheckInResponse>, FleetError> {
    // Authenticate before parsing: a stranger learns nothing about the body.
    let token = bearer(&headers)?;
    let req: CheckInRequest = super::parse_json(&body.map_err(super::body_error)?)?;
    Ok(Json(fleet.check_in(token, req).await?))
}

pub async fn telemetry(
    State(fleet): State<Arc<Fleet>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<TelemetryAck>, FleetError> {
    let token = bearer(&headers)?;
    let batch: TelemetryBatch = super::parse_json(&body.map_err(super::body_error)?)?;
    Ok(Json(fleet.ingest(token, batch)?))
}
