//! Admin routes of experiments (behind the admin token): thin wrappers
//! over `experiment/admin.rs`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;

use super::JsonBody;
use crate::access::Principal;
use crate::api::ActionBody;
use crate::error::FleetError;
use crate::experiment::admin::{CreateExperiment, ExperimentView};
use crate::Fleet;

type Fl = State<Arc<Fleet>>;

fn experiment_id(s: &str) -> Result<u64, FleetError> {
    s.parse()
        .map_err(|_| FleetError::BadRequest(format!("experiment id {s:?} is not a number")))
}

#[utoipa::path(post, path = "/admin/v1/experiments", security(("admin" = [])), tag = "admin", summary = "Start an A/B experiment: a share of the targeted devices gets the treatment, the rest keep the channel's release (the control)", request_body = CreateExperiment, responses((status = 201, description = "The experiment, running", body = ExperimentView), super::Errors))]
pub async fn create(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    JsonBody(r): JsonBody<CreateExperiment>,
) -> Result<(StatusCode, Json<ExperimentView>), FleetError> {
    let what = format!("model {}", r.model);
    crate::apps::scope(&p, &what, f.app_of_model(&r.model).as_deref())?;
    Ok((
        StatusCode::CREATED,
        Json(f.create_experiment(&p.actor, r).await?),
    ))
}

#[utoipa::path(get, path = "/admin/v1/experiments", security(("admin" = [])), tag = "admin", summary = "Every experiment, with its exposure, per-class results and decision", responses((status = 200, description = "The experiments", body = Vec<ExperimentView>), super::Errors))]
pub async fn list(State(f): Fl) -> Json<Vec<ExperimentView>> {
    Json(f.experiments())
}

#[utoipa::path(get, path = "/admin/v1/experiments/{id}", security(("admin" = [])), tag = "admin", summary = "One experiment: exposure, the difference per class and metric with its always-valid interval, and the decision", params(("id" = u64, Path, description = "Experiment id")), responses((status = 200, description = "The experiment", body = ExperimentView), super::Errors))]
pub async fn one(State(f): Fl, Path(id): Path<String>) -> Result<Json<ExperimentView>, FleetError> {
    Ok(Json(f.experiment(experiment_id(&id)?)?))
}

#[utoipa::path(post, path = "/admin/v1/experiments/{id}/{action}", security(("admin" = [])), tag = "admin", summary = "Ship (the treatment becomes the channel's release) or stop (every device returns to the control) an experiment", params(("id" = u64, Path, description = "Experiment id"), ("action" = String, Path, description = "ship or stop")), request_body = ActionBody, responses((status = 200, description = "The experiment after the action, its analysis kept as it ended", body = ExperimentView), super::Errors))]
pub async fn action(
    State(f): Fl,
    Extension(p): Extension<Principal>,
    Path((id, action)): Path<(String, String)>,
    JsonBody(b): JsonBody<ActionBody>,
) -> Result<Json<ExperimentView>, FleetError> {
    let id = experiment_id(&id)?;
    crate::apps::scope(
        &p,
        &format!("experiment {id}"),
        f.app_of_rollout(id).as_deref(),
    )?;
    let ship = match action.as_str() {
        "ship" => true,
        "stop" => false,
        _ => {
            return Err(FleetError::NotFound(format!(
                "unknown experiment action {action:?}; use ship or stop"
            )))
        }
    };
    Ok(Json(
        f.experiment_action(&p.actor, id, ship, b.reason).await?,
    ))
}
