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

pub async fn telemetry(
    State(fleet): State<Arc<Fleet>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<TelemetryAck>, FleetError> {
    let token = bearer(&headers)?;
    let batch: TelemetryBatch = super::parse_json(&body.map_err(super::body_error)?)?;
    let events = u32::try_from(batch.events.len()).unwrap_or(u32::MAX);
    let m = fleet.metrics();
    match fleet.ingest(token, batch) {
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
