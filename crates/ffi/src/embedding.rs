//! Embeddings as the UniFFI API, the C ABI (both through `LocalModel`) and
//! the in-process canary run them: an engine `Embedder` started on the
//! model at the first call (embedding models only: a generative model is
//! refused by name there), each text tokenized with BOS and cut to the
//! context, the vectors pooled and normalised as the model says, in order.

use std::sync::{Arc, OnceLock};

use outpost_engine::{EmbedConfig, Embedder, Model};

/// A model and the embedder started on it when first needed.
pub(crate) struct LazyEmbedder {
    model: Arc<Model>,
    embedder: OnceLock<Embedder>,
}

impl LazyEmbedder {
    pub(crate) fn new(model: Arc<Model>) -> LazyEmbedder {
        LazyEmbedder {
            model,
            embedder: OnceLock::new(),
        }
    }

    /// The vectors of `texts`, in order.
    pub(crate) fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        if texts.is_empty() {
            return Err("no texts to embed: give at least one".into());
        }
        let e = match self.embedder.get() {
            Some(e) => e,
            None => {
                let started = Embedder::start(self.model.clone(), EmbedConfig::default())
                    .map_err(|e| e.to_string())?;
                self.embedder.get_or_init(|| started)
            }
        };
        let inputs = texts
            .iter()
            .map(|t| e.tokenize(t, true))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        e.embed(inputs).map_err(|e| e.to_string())
    }
}
