//! `outpost route`: hybrid routing. The flags `outpost serve` takes for it
//! (`--route-policy`, `--cloud-url`, `--log-requests`), `outpost route
//! check FILE` (validate a policy) and `outpost route eval PROMPTS` (a prompt
//! set through local-only, cloud-only and auto; see `route/eval.rs`).

mod eval;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use outpost_router::{Policy, Router};
use outpost_server::{AppState, RequestLog};

/// Routing flags of `outpost serve`.
#[derive(Debug, Args)]
pub struct RouteServeArgs {
    /// Route OpenAI requests (/v1/chat/completions, /v1/completions)
    /// between the local model and a cloud by this TOML policy: modes
    /// local_only, prefer_local, auto, prefer_cloud, cloud_only, per app
    /// ([apps.NAME], picked by the x-outpost-app header or an app API key)
    /// and per request (x-outpost-route-mode, x-outpost-latency-budget-ms).
    /// Every answer says where it ran: x-outpost-route: local|cloud;
    /// reason=... Check a file with `outpost route check FILE`.
    /// Without this flag and --cloud-url everything runs locally.
    #[arg(long, value_name = "FILE")]
    pub route_policy: Option<PathBuf>,
    /// The OpenAI-compatible cloud, up to /v1 (e.g. https://api.openai.com/v1);
    /// overrides the policy's [cloud] url. Its key comes from
    /// OUTPOST_CLOUD_API_KEY (or the variable [cloud] api_key_env names).
    /// Alone, without --route-policy, it routes with the default policy
    /// (mode auto, personal data stays local).
    #[arg(long, value_name = "URL")]
    pub cloud_url: Option<String>,
    /// The model name the cloud gets (overrides the policy's [cloud] model;
    /// default: the name the client asked for).
    #[arg(long, value_name = "NAME")]
    pub cloud_model: Option<String>,
    /// Append every request body this server receives to FILE, one JSON
    /// line each ({"ts","method","path","body"}): shows exactly what reached
    /// this server (e.g. on a test "cloud": only redacted text).
    #[arg(long, value_name = "FILE")]
    pub log_requests: Option<PathBuf>,
}

impl RouteServeArgs {
    /// Adds the router and the request log to the server's state.
    pub fn apply(&self, mut state: AppState) -> Result<AppState> {
        if self.cloud_model.is_some() && self.route_policy.is_none() && self.cloud_url.is_none() {
            anyhow::bail!("--cloud-model needs a cloud: give --cloud-url URL or --route-policy FILE with [cloud] url");
        }
        if self.route_policy.is_some() || self.cloud_url.is_some() {
            let mut policy = match &self.route_policy {
                Some(p) => Policy::load(p)?,
                None => Policy::default(),
            };
            if let Some(m) = &self.cloud_model {
                policy.cloud.model = Some(m.clone());
            }
            let router = Router::new(policy, self.cloud_url.clone())?;
            eprintln!(
                "routing: default mode {}, {} app(s), cloud {}, personal data {}",
                router.policy.mode.as_str(),
                router.policy.apps.len(),
                router.cloud.as_ref().map_or("none", |c| c.url()),
                match router.policy.auto.sensitive {
                    outpost_router::Sensitive::Local => "stays local",
                    outpost_router::Sensitive::Redact => "redacted with placeholders",
                }
            );
            state = state.with_router(router);
        }
        if let Some(path) = &self.log_requests {
            let log = RequestLog::open(path).with_context(|| {
                format!(
                    "--log-requests {}: cannot open the file for appending",
                    path.display()
                )
            })?;
            state = state.with_request_log(log);
        }
        Ok(state)
    }
}

#[derive(Debug, Args)]
pub struct RouteArgs {
    #[command(subcommand)]
    pub command: RouteCommand,
}

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Check a route policy file: errors name the line; a valid file is
    /// summarised (modes per app, cloud, thresholds).
    ///
    /// Example:
    ///   outpost route check policy.toml
    #[command(verbatim_doc_comment)]
    Check { file: PathBuf },
    /// Run a prompt set through local-only, cloud-only and auto, and report
    /// the cloud share of auto, latency per mode, and how often local-only
    /// and auto give the same answer as the cloud (greedy decoding).
    ///
    /// PROMPTS: one prompt per line (blank lines and #-lines skipped), or
    /// JSON lines {"prompt": "...", "max_tokens": N}.
    /// Against a running `outpost serve --route-policy ...` (--server URL),
    /// or, without --server, it starts a cloud (`outpost serve CLOUD_MODEL`)
    /// and a routed local server itself.
    ///
    /// Examples:
    ///   outpost route eval prompts.txt
    ///   outpost route eval prompts.txt --policy policy.toml --json
    ///   outpost route eval prompts.txt --server http://127.0.0.1:8642 --model smollm2-135m
    #[command(verbatim_doc_comment)]
    Eval(eval::EvalArgs),
}

pub fn route(a: RouteArgs) -> Result<()> {
    match a.command {
        RouteCommand::Check { file } => {
            let policy = Policy::load(&file)?;
            println!("{}: valid", file.display());
            println!("  default mode: {}", policy.mode.as_str());
            for (name, app) in &policy.apps {
                println!(
                    "  app {name}: {}{}",
                    app.mode.as_str(),
                    if app.api_keys.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} API key(s))", app.api_keys.len())
                    }
                );
            }
            println!(
                "  cloud: {} (model {}, key from ${})",
                policy
                    .cloud
                    .url
                    .as_deref()
                    .unwrap_or("none (give --cloud-url)"),
                policy.cloud.model.as_deref().unwrap_or("as requested"),
                policy.cloud.api_key_env
            );
            println!(
                "  auto: personal data {:?}, complexity threshold {}, cascade {}",
                policy.auto.sensitive,
                policy.auto.complexity_threshold,
                if policy.cascade.enabled {
                    format!("below mean logprob {}", policy.cascade.min_mean_logprob)
                } else {
                    "off".into()
                }
            );
            Ok(())
        }
        RouteCommand::Eval(args) => eval::eval(args),
    }
}
