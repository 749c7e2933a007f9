//! The quality canary: after an install (and after an engine or app
//! update), the manifest's canaries run through the installed model and
//! are compared with what the tier gave on the build host — the top
//! next-token log-probs for a generative model (worst KLD), the vectors of
//! a few sentences for an embedding model (worst cosine). The agent does
//! not link the engine, so whoever runs it says how the model runs
//! ([`CanaryHow`]): in a child process for the CLI (a crash in inference
//! cannot take the agent down): `PROGRAM ARGS... --model BLOB` reading
//! `{"kind": "generate"|"embedding", "canaries": [...]}` on stdin and
//! printing `{"kld": .., "same_top": ..}` or `{"min_cosine": ..}` (the
//! CLI's hidden `outpost agent canary`); or in process, through a
//! [`CanaryProbe`] the embedding library supplies (an app on iOS may not
//! start processes; `outpost-ffi` measures with the engine it links).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use outpost_protocol::manifest::{Canary, EmbeddingCanary, Manifest, ModelKind};
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The KLD (nats, worst canary position) above which a model fails: well
/// above the ~0.1-0.2 nats of kernel noise between CPUs seen on Gemma 3,
/// well below what a damaged tier gives.
pub const DEFAULT_MAX_KLD: f64 = 0.5;

/// The worst cosine (device vector to build-host vector) below which an
/// embedding model fails. The same tier on another CPU agrees to ~1e-5;
/// the next tier down (q8_0 → q5_0 on MiniLM) already drops to ~0.99.
pub const DEFAULT_MIN_COSINE: f64 = 0.995;

/// Measures a canary set on the model file at a path, in this process.
pub trait CanaryProbe: Send + Sync {
    /// What `set` measures on the model at `model`; an error is a model
    /// that could not load or run (it fails its canary).
    fn measure(&self, model: &Path, set: CanarySet<'_>) -> Result<CanaryResult, String>;
}

/// Where the canary's model runs.
#[derive(Clone)]
pub enum CanaryHow {
    /// `program args... --model BLOB`, reading the set on stdin.
    Child { program: PathBuf, args: Vec<String> },
    /// In this process (an app's library, which links the engine).
    InProcess(std::sync::Arc<dyn CanaryProbe>),
}

impl std::fmt::Debug for CanaryHow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Child { program, args } => f
                .debug_struct("Child")
                .field("program", program)
                .field("args", args)
                .finish(),
            Self::InProcess(_) => f.write_str("InProcess"),
        }
    }
}

/// How to run the canary, and its limits.
#[derive(Debug, Clone)]
pub struct CanaryRunner {
    pub how: CanaryHow,
    /// A generative model fails when its worst KLD exceeds this.
    pub max_kld: f64,
    /// An embedding model fails when its worst cosine is below this.
    pub min_cosine: f64,
}

/// A manifest's canaries, as the child reads them.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", content = "canaries", rename_all = "snake_case")]
pub enum CanarySet<'a> {
    Generate(&'a [Canary]),
    Embedding(&'a [EmbeddingCanary]),
}

impl<'a> CanarySet<'a> {
    /// The canaries of `m`'s kind; `None` when it has none.
    pub fn of(m: &'a Manifest) -> Option<Self> {
        match m.kind {
            ModelKind::Generate if !m.canaries.is_empty() => Some(Self::Generate(&m.canaries)),
            ModelKind::Embedding if !m.embedding_canaries.is_empty() => {
                Some(Self::Embedding(&m.embedding_canaries))
            }
            _ => None,
        }
    }
}

/// What the child measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CanaryResult {
    LogProbs {
        /// Worst KLD over the canary positions (reference ‖ device, over
        /// the reference's top tokens, renormalised). Non-finite → failed.
        kld: f64,
        /// Share of positions whose most likely token matched.
        same_top: f64,
    },
    Vectors {
        /// Worst cosine of a device vector to its build-host vector.
        /// Non-finite → failed.
        min_cosine: f64,
    },
}

impl CanaryResult {
    /// The result of a canary that could not run (the model crashed or
    /// did not load): a failure of the right kind.
    pub fn failed(set: CanarySet<'_>) -> Self {
        match set {
            CanarySet::Generate(_) => Self::LogProbs {
                kld: f64::INFINITY,
                same_top: 0.0,
            },
            CanarySet::Embedding(_) => Self::Vectors {
                min_cosine: f64::NAN,
            },
        }
    }
}

impl CanaryRunner {
    /// Runs `set` through the model file at `model`.
    pub fn run(&self, model: &Path, set: CanarySet<'_>) -> Result<CanaryResult, AgentError> {
        match &self.how {
            CanaryHow::Child { program, args } => Self::run_child(program, args, model, set),
            CanaryHow::InProcess(probe) => {
                probe
                    .measure(model, set)
                    .map_err(|problem| AgentError::Config {
                        what: "the canary run (in process)".into(),
                        problem,
                    })
            }
        }
    }

    fn run_child(
        program: &Path,
        args: &[String],
        model: &Path,
        set: CanarySet<'_>,
    ) -> Result<CanaryResult, AgentError> {
        let fail = |problem: String| AgentError::Config {
            what: format!("the canary run ({} {})", program.display(), args.join(" ")),
            problem,
        };
        let mut child = Command::new(program)
            .args(args)
            .arg("--model")
            .arg(model)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("could not start: {e}")))?;
        let input = serde_json::to_vec(&set).unwrap_or_default();
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&input);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail(format!("did not finish: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let no_result = |e: serde_json::Error| {
            fail(format!(
                "printed no result ({e}): {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        };
        match set {
            CanarySet::Generate(_) => {
                /// `kld` is null when the model's log-probs were not finite.
                #[derive(Deserialize)]
                struct Printed {
                    kld: Option<f64>,
                    same_top: f64,
                }
                let p: Printed = serde_json::from_slice(&out.stdout).map_err(no_result)?;
                Ok(CanaryResult::LogProbs {
                    kld: p.kld.unwrap_or(f64::INFINITY),
                    same_top: p.same_top,
                })
            }
            CanarySet::Embedding(_) => {
                /// `min_cosine` is null when a vector was not finite.
                #[derive(Deserialize)]
                struct Printed {
                    min_cosine: Option<f64>,
                }
                let p: Printed = serde_json::from_slice(&out.stdout).map_err(no_result)?;
                Ok(CanaryResult::Vectors {
                    min_cosine: p.min_cosine.unwrap_or(f64::NAN),
                })
            }
        }
    }

    /// Whether `r` passes.
    pub fn passes(&self, r: &CanaryResult) -> bool {
        match *r {
            CanaryResult::LogProbs { kld, .. } => kld.is_finite() && kld <= self.max_kld,
            CanaryResult::Vectors { min_cosine } => {
                min_cosine.is_finite() && min_cosine >= self.min_cosine
            }
        }
    }

    /// One line saying what `r` measured against which limit.
    pub fn describe(&self, r: &CanaryResult) -> String {
        match *r {
            CanaryResult::LogProbs { kld, same_top } => {
                let kld = if kld.is_finite() {
                    format!("{kld:.4}")
                } else {
                    "infinite (NaN or infinite log-probs)".into()
                };
                format!(
                    "KLD {kld} against the limit {} (same top token at {:.0} % of positions)",
                    self.max_kld,
                    same_top * 100.0
                )
            }
            CanaryResult::Vectors { min_cosine } => {
                let c = if min_cosine.is_finite() {
                    format!("{min_cosine:.6}")
                } else {
                    "undefined (no finite vector)".into()
                };
                format!(
                    "worst cosine {c} to the build host's vectors against the floor {}",
                    self.min_cosine
                )
            }
        }
    }

    /// The short reason sent to the fleet when `r` failed.
    pub fn revert_code(r: &CanaryResult) -> &'static str {
        match r {
            CanaryResult::LogProbs { .. } => "canary-kld",
            CanaryResult::Vectors { .. } => "canary-cosine",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> CanaryRunner {
        CanaryRunner {
            how: CanaryHow::Child {
                program: "true".into(),
                args: Vec::new(),
            },
            max_kld: DEFAULT_MAX_KLD,
            min_cosine: DEFAULT_MIN_COSINE,
        }
    }

    #[test]
    fn each_kind_passes_on_its_own_measure() {
        let r = runner();
        assert!(r.passes(&CanaryResult::LogProbs {
            kld: 0.1,
            same_top: 1.0
        }));
        assert!(!r.passes(&CanaryResult::LogProbs {
            kld: 0.6,
            same_top: 1.0
        }));
        assert!(!r.passes(&CanaryResult::LogProbs {
            kld: f64::NAN,
            same_top: 1.0
        }));
        assert!(r.passes(&CanaryResult::Vectors { min_cosine: 0.9999 }));
        assert!(!r.passes(&CanaryResult::Vectors { min_cosine: 0.99 }));
        assert!(!r.passes(&CanaryResult::Vectors {
            min_cosine: f64::NAN
        }));
        assert_eq!(
            CanaryRunner::revert_code(&CanaryResult::Vectors { min_cosine: 0.0 }),
            "canary-cosine"
        );
    }

    #[test]
    fn the_child_reads_a_tagged_set() {
        let c = [EmbeddingCanary {
            text: "a".into(),
            vector: vec![1.0, 0.0],
        }];
        let v = serde_json::to_value(CanarySet::Embedding(&c)).expect("json");
        assert_eq!(v["kind"], "embedding");
        assert_eq!(v["canaries"][0]["vector"][0], 1.0);
        assert!(matches!(
            CanaryResult::failed(CanarySet::Embedding(&c)),
            CanaryResult::Vectors { .. }
        ));
    }
}
