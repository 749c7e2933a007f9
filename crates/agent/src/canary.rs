//! The quality canary: after an install (and after an engine or app
//! update), the manifest's canary prompts run through the installed model
//! and the top next-token log-probs are compared with the ones the tier
//! gave on the build host. The model runs in a child process (the agent
//! does not link the engine, so a crash in inference cannot take the agent
//! down): `PROGRAM ARGS... --model BLOB` reading the canaries as JSON on
//! stdin and printing `{"kld": .., "same_top": ..}` (the CLI's hidden
//! `outpost agent canary`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use outpost_protocol::manifest::Canary;
use serde::Deserialize;

use crate::AgentError;

/// The KLD (nats, worst canary position) above which a model fails: well
/// above the ~0.1-0.2 nats of kernel noise between CPUs seen on Gemma 3,
/// well below what a damaged tier gives.
pub const DEFAULT_MAX_KLD: f64 = 0.5;

/// How to run the canary in a child process.
#[derive(Debug, Clone)]
pub struct CanaryRunner {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// A model fails when its worst KLD exceeds this.
    pub max_kld: f64,
}

/// What the child measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanaryResult {
    /// Worst KLD over the canary positions (reference ‖ device, over the
    /// reference's top tokens, renormalised). Non-finite → failed.
    pub kld: f64,
    /// Share of positions whose most likely token matched.
    pub same_top: f64,
}

impl CanaryRunner {
    /// Runs `canaries` through the model file at `model`.
    pub fn run(&self, model: &Path, canaries: &[Canary]) -> Result<CanaryResult, AgentError> {
        let fail = |problem: String| AgentError::Config {
            what: format!(
                "the canary run ({} {})",
                self.program.display(),
                self.args.join(" ")
            ),
            problem,
        };
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg("--model")
            .arg(model)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("could not start: {e}")))?;
        let input = serde_json::to_vec(canaries).unwrap_or_default();
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
        /// `kld` is null when the model's log-probs were not finite.
        #[derive(Deserialize)]
        struct Printed {
            kld: Option<f64>,
            same_top: f64,
        }
        let p: Printed = serde_json::from_slice(&out.stdout).map_err(|e| {
            fail(format!(
                "printed no result ({e}): {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        })?;
        Ok(CanaryResult {
            kld: p.kld.unwrap_or(f64::INFINITY),
            same_top: p.same_top,
        })
    }

    /// Whether `r` passes.
    pub fn passes(&self, r: &CanaryResult) -> bool {
        r.kld.is_finite() && r.kld <= self.max_kld
    }
}
