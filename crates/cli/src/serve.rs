//! `outpost serve`: the OpenAI-compatible HTTP daemon.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use outpost_server::{AppState, ServedModel, ServerConfig};

use crate::models;
use crate::run::load_template;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Models to serve: paths or short names (smollm2-135m, gemma3-270m).
    /// Clients name them by their short name, or the file name without .gguf.
    #[arg(required = true)]
    pub models: Vec<String>,
    /// Address to bind. Anything but loopback needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    #[arg(long, short = 'p', default_value_t = 8642)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every request but /health.
    #[arg(long, env = "OUTPOST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Concurrent sequences per model.
    #[arg(long, default_value_t = 4)]
    pub slots: u32,
    /// Context per sequence. Default: the model's training context, at most 8192.
    #[arg(long, short = 'c')]
    pub ctx_size: Option<u32>,
    /// CPU threads. Default: all cores.
    #[arg(long, short = 't')]
    pub threads: Option<u32>,
    /// Chat template for models without one: chatml, gemma, llama3 or a
    /// Jinja file; `MODEL=NAME|FILE` sets it for one model (repeatable).
    #[arg(long, value_name = "[MODEL=]NAME|FILE")]
    pub chat_template: Vec<String>,
}

fn served_name(spec: &str, path: &Path) -> String {
    if models::KNOWN.iter().any(|(n, _)| *n == spec) {
        return spec.to_string();
    }
    path.file_stem()
        .map_or_else(|| spec.to_string(), |s| s.to_string_lossy().into_owned())
}

/// The --chat-template value for one model: its own `MODEL=...` entry, else
/// an entry without a model name.
fn template_for(specs: &[String], spec: &str, name: &str) -> Option<String> {
    let own = specs.iter().find_map(|t| {
        let (m, v) = t.split_once('=')?;
        (m == spec || m == name).then(|| v.to_string())
    });
    own.or_else(|| specs.iter().find(|t| !t.contains('=')).cloned())
}

pub fn serve(a: ServeArgs) -> Result<()> {
    for t in &a.chat_template {
        if let Some((m, _)) = t.split_once('=') {
            if !a.models.iter().any(|spec| {
                spec == m || models::resolve(spec).is_ok_and(|p| served_name(spec, &p) == m)
            }) {
                bail!(
                    "--chat-template {t:?} names model {m:?}, which is not among the served models"
                );
            }
        }
    }
    if !a.host.is_loopback() && a.api_key.is_none() {
        bail!("binding {} exposes the models beyond this machine: give --api-key (or OUTPOST_API_KEY), or bind 127.0.0.1", a.host);
    }
    let cfg = ServerConfig {
        slots: a.slots,
        ctx_per_slot: a.ctx_size,
        threads: a.threads,
        api_key: a.api_key.clone(),
        ..ServerConfig::default()
    };
    let mut served = Vec::new();
    for spec in &a.models {
        let path = models::resolve(spec)?;
        let name = served_name(spec, &path);
        let template = load_template(template_for(&a.chat_template, spec, &name).as_deref())?;
        if served.iter().any(|m: &ServedModel| m.name == name) {
            bail!("model name {name:?} given twice");
        }
        let m =
            ServedModel::load(&name, &path, template.clone(), &cfg).map_err(anyhow::Error::msg)?;
        eprintln!("serving {name} ({}, {})", path.display(), m.digest);
        served.push(m);
    }
    let state = Arc::new(AppState::new(served, cfg));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let addr = SocketAddr::new(a.host, a.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (in use? try --port)"))?;
        eprintln!("listening on http://{addr} (OpenAI API at /v1; Ctrl-C stops)");
        outpost_server::run(listener, state)
            .await
            .context("serving")
    })
}
