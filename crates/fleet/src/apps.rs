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

/// Refuses (403) a change to what belongs to `apps` unless `p` may change
/// every one of them. No app (a target that does not exist yet, or not at
/// all: the operation answers for that) passes.
pub fn scope<'a>(p: &Principal, apps: impl IntoIterator<Item = &'a str>) -> FleetResult<()> {
    for app in apps {
        p.may_change(app).map_err(FleetError::Forbidden)?;
    }
    Ok(())
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
