//! The quality canary inside the app (#24): the agent's `CanaryProbe`
//! measured with the engine this library links, in this process (an iOS
//! app may not start processes, so the CLI's child is not an option). A
//! generative model's fingerprints give the worst KLD, an embedding
//! model's sentences the worst cosine, exactly as `outpost agent canary`
//! measures them (`outpost_variants::fingerprint`). A panic is caught and
//! fails the canary; a crash inside llama.cpp is not isolated here, unlike
//! the CLI's child.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use outpost_agent::{CanaryProbe, CanaryResult, CanarySet};
use outpost_engine::{LoadOptions, Model};
use outpost_variants::fingerprint;

/// Measures canaries with `threads` CPU threads (`None`: the engine's
/// choice).
pub(crate) struct InProcess {
    pub threads: Option<u32>,
}

impl CanaryProbe for InProcess {
    fn measure(&self, model: &Path, set: CanarySet<'_>) -> Result<CanaryResult, String> {
        catch_unwind(AssertUnwindSafe(|| self.run(model, set)))
            .unwrap_or_else(|_| Err("the canary panicked".into()))
    }
}

impl InProcess {
    fn run(&self, path: &Path, set: CanarySet<'_>) -> Result<CanaryResult, String> {
        // A sealed install is a memfd of this process: keep it in RAM.
        let opts = LoadOptions {
            mlock: path.starts_with("/proc/self/fd"),
            ..LoadOptions::default()
        };
        let model =
            Model::load(path, &opts).map_err(|e| format!("loading {}: {e}", path.display()))?;
        match set {
            CanarySet::Generate(canaries) => {
                let c = fingerprint::check(&model, canaries, self.threads)
                    .map_err(|e| e.to_string())?;
                Ok(CanaryResult::LogProbs {
                    kld: c.kld,
                    same_top: c.same_top,
                })
            }
            CanarySet::Embedding(canaries) => {
                let texts: Vec<String> = canaries.iter().map(|c| c.text.clone()).collect();
                let vectors = crate::embedding::LazyEmbedder::new(std::sync::Arc::new(model))
                    .embed(&texts)?;
                Ok(CanaryResult::Vectors {
                    min_cosine: fingerprint::worst_cosine(canaries, &vectors).unwrap_or(f64::NAN),
                })
            }
        }
    }
}
