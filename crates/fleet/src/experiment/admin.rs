//! Experiments as the admin API runs them: create (a one-stage rollout
//! with an [`ExperimentSpec`]), list, status (exposure and analysis), stop
//! and ship. The maths is in the parent module; this gathers its inputs
//! from the fleet's state and telemetry.

use std::collections::BTreeMap;

use outpost_protocol::manifest::ModelName;
use outpost_protocol::Timestamp;
use serde::{Deserialize, Serialize};

use super::{analyze, decide, Analysis, ExperimentSpec, Metric};
use crate::api::CreateRollout;
use crate::error::{FleetError, FleetResult};
use crate::rollout::{percent_of, Rollout, RolloutAction, RolloutState, Target};
use crate::state::lock;
use crate::telemetry::Agg;
use crate::Fleet;

/// `POST /admin/v1/experiments`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    pub model: ModelName,
    /// The control release: the channel's release now.
    pub control: String,
    /// The treatment release.
    pub treatment: String,
    #[serde(default = "stable")]
    pub channel: String,
    /// Share of the targeted devices that get the treatment, in (0, 100).
    pub split_percent: f64,
    /// Device classes in the experiment (empty: every class).
    #[serde(default)]
    pub device_classes: Vec<String>,
    pub metrics: Vec<Metric>,
    /// Experiment-wide false-call rate (default 0.05).
    #[serde(default)]
    pub alpha: Option<f64>,
}

fn stable() -> String {
    "stable".to_string()
}

/// `running`, `paused` (by an operator), `halted` (by the automatic
/// halt), `shipped`, `stopped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentState {
    Running,
    Paused,
    Halted,
    Shipped,
    Stopped,
}

/// Devices exposed to each arm in one class: targeted devices on the
/// experiment's channel, last issued that arm's release, seen since the
/// experiment began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Exposure {
    pub device_class: String,
    pub control_devices: u64,
    pub treatment_devices: u64,
}

/// An experiment as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExperimentView {
    /// The experiment's rollout id.
    pub id: u64,
    pub model: ModelName,
    pub channel: String,
    pub control: String,
    pub treatment: String,
    pub split_percent: f64,
    pub device_classes: Vec<String>,
    pub metrics: Vec<Metric>,
    pub alpha: f64,
    pub state: ExperimentState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Why it is paused, halted or ended, when someone said.
    pub reason: Option<String>,
    pub exposure: Vec<Exposure>,
    /// Live while it runs; as it was at the end once stopped or shipped.
    #[serde(flatten)]
    pub analysis: Analysis,
}

/// The automatic halt's reason, if it paused this rollout.
fn halt_reason(r: &Rollout) -> Option<&str> {
    (r.state == RolloutState::Paused)
        .then_some(r.reason.as_deref())
        .flatten()
        .filter(|why| why.starts_with("auto-halt"))
}

impl Fleet {
    /// The arms' telemetry per targeted class since the experiment began,
    /// analysed.
    pub(crate) fn experiment_analysis(&self, r: &Rollout) -> Analysis {
        let Some(spec) = &r.experiment else {
            return Analysis {
                results: Vec::new(),
                decision: super::Decision::KeepRunning,
                decision_reason: format!("rollout {} is not an experiment", r.id),
            };
        };
        let since = r.created_at.unix_seconds() / 60;
        let minutes = (self.now().unix_seconds() / 60).saturating_sub(since) + 1;
        let mut arms: [BTreeMap<String, Agg>; 2] = Default::default();
        for c in self.cohorts(minutes) {
            let k = &c.key;
            if k.channel != r.channel
                || k.model != r.model
                || !(r.target.device_classes.is_empty()
                    || r.target.device_classes.contains(&k.device_class))
            {
                continue;
            }
            let arm = if k.model_version == spec.control {
                0
            } else if k.model_version == r.version {
                1
            } else {
                continue;
            };
            arms[arm]
                .entry(k.device_class.clone())
                .or_default()
                .merge(&c.agg);
        }
        let results = analyze(spec, &arms[0], &arms[1]);
        let (decision, decision_reason) = decide(&results, halt_reason(r));
        Analysis {
            results,
            decision,
            decision_reason,
        }
    }

    fn exposure(&self, r: &Rollout, control: &str) -> Vec<Exposure> {
        let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for d in self.devices().all() {
            let d = lock(d);
            let (Some(p), Some(i)) = (&d.profile, d.issued.get(&r.model)) else {
                continue;
            };
            if d.channel != r.channel
                || !r.target.matches(p)
                || d.last_seen_at.is_none_or(|t| t < r.created_at)
            {
                continue;
            }
            let e = by.entry(p.device_class.clone()).or_default();
            if i.model_version == control {
                e.0 += 1;
            } else if i.model_version == r.version {
                e.1 += 1;
            }
        }
        by.into_iter()
            .map(|(device_class, (c, t))| Exposure {
                device_class,
                control_devices: c,
                treatment_devices: t,
            })
            .collect()
    }

    fn experiment_view(&self, r: &Rollout) -> Option<ExperimentView> {
        let spec = r.experiment.as_ref()?;
        let state = match r.state {
            RolloutState::Active => ExperimentState::Running,
            RolloutState::Paused if halt_reason(r).is_some() => ExperimentState::Halted,
            RolloutState::Paused => ExperimentState::Paused,
            RolloutState::Completed => ExperimentState::Shipped,
            RolloutState::RolledBack | RolloutState::Aborted => ExperimentState::Stopped,
        };
        let analysis = match &spec.result {
            Some(a) => a.clone(),
            None => self.experiment_analysis(r),
        };
        Some(ExperimentView {
            id: r.id,
            model: r.model.clone(),
            channel: r.channel.clone(),
            control: spec.control.clone(),
            treatment: r.version.clone(),
            split_percent: percent_of(r.percent_bp()),
            device_classes: r.target.device_classes.clone(),
            metrics: spec.metrics.clone(),
            alpha: spec.alpha,
            state,
            created_at: r.created_at,
            updated_at: r.updated_at,
            reason: r.reason.clone(),
            exposure: self.exposure(r, &spec.control),
            analysis,
        })
    }

    pub async fn create_experiment(
        &self,
        actor: &str,
        req: CreateExperiment,
    ) -> FleetResult<ExperimentView> {
        let bad = |m: String| Err(FleetError::BadRequest(m));
        if !(req.split_percent > 0.0 && req.split_percent < 100.0) {
            return bad(format!(
                "split_percent {} must be above 0 and below 100: the rest of the targeted devices are the control",
                req.split_percent
            ));
        }
        if req.metrics.is_empty() {
            return bad(format!(
                "metrics is empty; name at least one of {}",
                Metric::ALL.map(Metric::as_str).join(", ")
            ));
        }
        let mut seen = req.metrics.clone();
        seen.sort();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return bad(format!("metric {} is named twice", w[0].as_str()));
        }
        let alpha = req.alpha.unwrap_or(0.05);
        if !(alpha > 0.0 && alpha <= 0.5) {
            return bad(format!("alpha {alpha} must be in (0, 0.5], e.g. 0.05"));
        }
        if req.control == req.treatment {
            return bad(format!(
                "control and treatment are both {}@{}; an experiment compares two releases",
                req.model, req.control
            ));
        }
        let spec = ExperimentSpec {
            control: req.control.clone(),
            metrics: req.metrics,
            alpha,
            result: None,
        };
        let rollout = CreateRollout {
            model: req.model,
            version: req.treatment,
            channel: req.channel,
            stages: vec![req.split_percent],
            soak_s: 0,
            target: Target {
                device_classes: req.device_classes,
                ..Target::default()
            },
        };
        let view = self.create_rollout_of(actor, rollout, Some(spec)).await?;
        self.experiment(view.rollout.id)
    }

    pub fn experiments(&self) -> Vec<ExperimentView> {
        let rollouts: Vec<Rollout> = self.state().rollouts.values().cloned().collect();
        rollouts
            .iter()
            .filter_map(|r| self.experiment_view(r))
            .collect()
    }

    pub fn experiment(&self, id: u64) -> FleetResult<ExperimentView> {
        let r = self.state().rollouts.get(&id).cloned();
        r.as_ref()
            .and_then(|r| self.experiment_view(r))
            .ok_or_else(|| {
                FleetError::NotFound(format!(
                    "experiment {id} does not exist; `outpost fleet experiment list` shows them"
                ))
            })
    }

    /// `ship` (the treatment becomes the channel's release) or `stop`
    /// (every device returns to the control).
    pub async fn experiment_action(
        &self,
        actor: &str,
        id: u64,
        ship: bool,
        reason: Option<String>,
    ) -> FleetResult<ExperimentView> {
        self.experiment(id)?;
        let action = if ship {
            RolloutAction::Complete
        } else {
            RolloutAction::Rollback
        };
        self.rollout_action(actor, id, action, reason).await?;
        self.experiment(id)
    }
}
