//! Which app the target of an admin change belongs to (#22), so that an
//! API token scoped to apps changes only theirs. A model belongs to the app
//! of its releases (one app per model, kept by `publish`), a device to its
//! app key's app, a rollout or experiment to its model's, a blob to the
//! apps of the releases that use it. The route table (`access.rs`) says
//! which routes reach one app; their handlers ask here and check with
//! [`scope`].

use std::collections::BTreeSet;

use outpost_protocol::manifest::ModelName;
use outpost_protocol::Digest;

use crate::access::Principal;
use crate::error::{FleetError, FleetResult};
use crate::state::lock;
use crate::Fleet;

/// Refuses (403) a change to `target`, of `app`, unless `p` may change
/// that app. For a token scoped to apps, a target without an app (one that
/// does not exist) is a 404 here, not a pass: an app once given never
/// changes, so a check on an existing target still holds when the change
/// runs, but a target that appears in between (the next rollout id, a
/// model's first release) could be another app's. For everyone else the
/// operation answers for a missing target itself.
pub fn scope(p: &Principal, target: &str, app: Option<&str>) -> FleetResult<()> {
    match app {
        Some(app) => p.may_change(app).map_err(FleetError::Forbidden),
        None if p.apps.is_some() => Err(FleetError::NotFound(format!("{target} does not exist"))),
        None => Ok(()),
    }
}

impl Fleet {
    /// The app of `model`'s releases; `None` before its first release.
    pub fn app_of_model(&self, model: &ModelName) -> Option<String> {
        self.state().model_app(model).map(str::to_string)
    }

    /// The app a device registered for; `None` for an unknown device.
    pub async fn app_of_device(&self, id: &str) -> FleetResult<Option<String>> {
        if !self.knows_device(id).await? {
            return Ok(None);
        }
        Ok(self.devices().by_id(id).map(|d| lock(d).app.clone()))
    }

    /// The app of a rollout's (or an experiment's) model.
    pub fn app_of_rollout(&self, id: u64) -> Option<String> {
        let s = self.state();
        let r = s.rollouts.get(&id)?;
        s.model_app(&r.model).map(str::to_string)
    }

    /// The apps of the releases that use blob `digest`.
    pub fn apps_of_blob(&self, digest: &Digest) -> BTreeSet<String> {
        self.state()
            .releases
            .values()
            .filter(|r| r.meta.variants.iter().any(|v| v.digest == Some(*digest)))
            .map(|r| r.meta.app.clone())
            .collect()
    }
}
