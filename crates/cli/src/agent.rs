//! `outpost agent`: the device agent (`outpost_agent`) on this machine:
//! check in with a fleet, install what it assigns into a store that
//! `outpost serve --store` serves, ship the telemetry spool. The hidden
//! `outpost agent canary` is the child process the agent runs its quality
//! canary in (it links the engine; the agent does not).

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use outpost_agent::{Agent, AgentConfig, CanaryHow, CanaryRunner, EngineFacts, Overrides};
use outpost_protocol::manifest::{Canary, EmbeddingCanary, Version};
use outpost_protocol::signing::PinnedKey;
use outpost_protocol::Keyring;

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Check in, install, report, and repeat at the interval the fleet
    /// asks (backing off with jitter while the fleet is unreachable) until
    /// Ctrl-C or SIGTERM. The installed models keep serving throughout.
    Run(RunArgs),
    /// One check-in cycle: print what happened to each model, exit 0 (1 if
    /// the cycle failed, e.g. the fleet is unreachable).
    Once(RunArgs),
    /// Print the device profile this machine (and --profile) gives, as JSON.
    Profile(ProfileArgs),
    /// What a store has installed, and its telemetry spool.
    Status {
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
    },
    /// (Internal) Run canaries (JSON on stdin) through a model file and
    /// print {"kld", "same_top"}.
    #[command(hide = true)]
    Canary {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, short = 't')]
        threads: Option<u32>,
    },
}

#[derive(Debug, Args)]
struct ProfileArgs {
    /// A TOML file overriding any profile field (device_class, ram_bytes,
    /// os, battery_pct, charging, unmetered, ...): one machine can act as
    /// many devices.
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Where free disk is measured.
    #[arg(long, value_name = "DIR", default_value = ".")]
    store: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The fleet's URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8700")]
    fleet: String,
    /// The model store to install into (created if missing); serve it
    /// with `outpost serve --store DIR`. The device identity lives there.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// The app key to register with, on first start (the fleet's data
    /// folder has one in app.key).
    #[arg(long, env = "OUTPOST_APP_KEY", hide_env_values = true)]
    app_key: Option<String>,
    /// Read the app key from a file instead.
    #[arg(long, value_name = "FILE", conflicts_with = "app_key")]
    app_key_file: Option<PathBuf>,
    /// Signing key(s) to trust: the fleet's signing.pub.json (repeatable,
    /// for key rotation). Manifests signed by anything else are refused.
    #[arg(long = "pin", value_name = "FILE", required = true)]
    pins: Vec<PathBuf>,
    /// Channel to register on (default: stable).
    #[arg(long)]
    channel: Option<String>,
    /// A TOML file overriding profile fields (see `outpost agent profile`).
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// Most bytes per second a download may take, e.g. 5MB, 512KiB.
    #[arg(long, value_name = "RATE", value_parser = crate::serve::parse_bytes)]
    bandwidth: Option<u64>,
    /// Download only on an unmetered network (profile `unmetered`).
    #[arg(long)]
    require_unmetered: bool,
    /// Download only while charging (profile `charging`).
    #[arg(long)]
    require_charging: bool,
    /// Disk the store may use, e.g. 2GiB (downloads beyond it are refused).
    #[arg(long, value_name = "SIZE", value_parser = crate::serve::parse_bytes)]
    budget: Option<u64>,
    /// Skip the quality canary after installs (not recommended).
    #[arg(long)]
    no_canary: bool,
    /// Worst KL divergence (nats) the canary accepts before reverting.
    #[arg(long, default_value_t = outpost_agent::canary::DEFAULT_MAX_KLD)]
    canary_max_kld: f64,
    /// Worst cosine (device vectors to the build host's) an embedding
    /// model's canary accepts before reverting.
    #[arg(long, default_value_t = outpost_agent::canary::DEFAULT_MIN_COSINE)]
    canary_min_cosine: f64,
    /// The local server to tell after an install or revert, e.g.
    /// http://127.0.0.1:8642 (it gets POST /admin/reload).
    #[arg(long, value_name = "URL")]
    serve_url: Option<String>,
    /// Check in at least this often (seconds), whatever the fleet says.
    #[arg(long, value_name = "SECONDS")]
    max_interval: Option<u64>,
    /// Where the device's key for sealed models lives: `file` (STORE/
    /// device-key.json, mode 0600; survives reboots) or `kernel-keyring`
    /// (the Linux user keyring: never on disk, gone at reboot, after which
    /// the device must register again). Give `outpost serve --store` the
    /// same choice.
    #[arg(long, value_name = "KIND", default_value = "file")]
    device_key_store: outpost_agent::device_key::KeyStoreKind,
}

pub fn agent(a: AgentArgs) -> Result<()> {
    match a.command {
        AgentCommand::Run(r) => run(r, false),
        AgentCommand::Once(r) => run(r, true),
        AgentCommand::Profile(p) => {
            let overrides = overrides(p.profile.as_ref())?;
            let profile = outpost_agent::profile::detect(&engine_facts()?, &p.store, &overrides)?;
            println!("{}", serde_json::to_string_pretty(&profile.fleet)?);
            eprintln!(
                "cpu {:?}, {} cores, {} MB available, battery {:?} % (charging {:?}), {:?} °C, unmetered {}",
                profile.cpu_model.as_deref().unwrap_or("?"),
                profile.cores,
                profile.available_ram_bytes / 1_000_000,
                profile.battery_pct,
                profile.charging,
                profile.temperature_c,
                profile.unmetered
            );
            Ok(())
        }
        AgentCommand::Status { store } => status(&store),
        AgentCommand::Canary { model, threads } => canary(&model, threads),
    }
}

fn overrides(path: Option<&PathBuf>) -> Result<Overrides> {
    Ok(match path {
        Some(p) => Overrides::load(p)?,
        None => Overrides::default(),
    })
}

fn engine_facts() -> Result<EngineFacts> {
    let v = Version::parse(env!("CARGO_PKG_VERSION")).map_err(anyhow::Error::msg)?;
    Ok(EngineFacts {
        app_version: v,
        engine_version: v,
        ggml_types: outpost_engine::gguf::ggml_type_names(),
    })
}

fn run(r: RunArgs, once: bool) -> Result<()> {
    let mut pinned = Vec::new();
    for p in &r.pins {
        let bytes = std::fs::read(p).with_context(|| format!("reading --pin {}", p.display()))?;
        let key: PinnedKey = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "--pin {} is not a signing key file ({{\"key_id\", \"public_key\"}}: the fleet's signing.pub.json)",
                p.display()
            )
        })?;
        pinned.push(key);
    }
    let keyring = Keyring::from_pinned(&pinned).map_err(anyhow::Error::msg)?;
    let app_key = match &r.app_key_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading --app-key-file {}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => r.app_key.clone(),
    };
    if !(r.canary_max_kld > 0.0 && r.canary_max_kld.is_finite()) {
        bail!(
            "--canary-max-kld {} must be a positive number of nats",
            r.canary_max_kld
        );
    }
    if !(r.canary_min_cosine > 0.0 && r.canary_min_cosine <= 1.0) {
        bail!(
            "--canary-min-cosine {} must be a cosine in (0, 1]",
            r.canary_min_cosine
        );
    }
    let canary = (!r.no_canary)
        .then(|| -> Result<CanaryRunner> {
            Ok(CanaryRunner {
                how: CanaryHow::Child {
                    program: std::env::current_exe()
                        .context("finding this program for the canary")?,
                    args: vec!["agent".into(), "canary".into()],
                },
                max_kld: r.canary_max_kld,
                min_cosine: r.canary_min_cosine,
            })
        })
        .transpose()?;
    let cfg = AgentConfig {
        fleet_url: r.fleet.trim_end_matches('/').to_string(),
        app_key,
        channel: r.channel.clone(),
        store_root: r.store.clone(),
        budget_bytes: r.budget,
        keyring,
        overrides: overrides(r.profile.as_ref())?,
        engine: engine_facts()?,
        bandwidth_cap: r.bandwidth,
        require_unmetered: r.require_unmetered,
        require_charging: r.require_charging,
        canary,
        reload_url: r
            .serve_url
            .as_ref()
            .map(|u| format!("{}/admin/reload", u.trim_end_matches('/'))),
        spool_max_events: outpost_store::spool::DEFAULT_MAX_EVENTS,
        batch_size: 500,
        backoff: (Duration::from_secs(1), Duration::from_secs(300)),
        max_interval: r.max_interval.map(Duration::from_secs),
        device_key_store: r.device_key_store,
    };
    // Ctrl-C lets the current step finish; SIGTERM (or a kill) stops at
    // once, which the store's crash safety covers.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
    let mut agent = if once {
        Agent::open(cfg)?
    } else {
        match Agent::open_patiently(cfg, &stop, |e, wait| {
            tracing::warn!(
                "registration failed ({e}); retrying in {:.1} s",
                wait.as_secs_f64()
            )
        })? {
            Some(a) => a,
            None => {
                tracing::info!("stopped");
                return Ok(());
            }
        }
    };
    tracing::info!(
        "device {} on channel {} (fleet {})",
        agent.identity().device_id,
        agent.identity().channel,
        agent.identity().fleet_url
    );
    if once {
        let c = agent.run_once()?;
        for m in &c.models {
            println!("{m}");
        }
        println!(
            "telemetry: {} events sent; next check-in in {} s",
            c.telemetry_sent,
            c.next_check_in.as_secs()
        );
        return Ok(());
    }
    agent.run(&stop, |r| match r {
        Ok(c) => {
            for m in &c.models {
                println!("{m}");
            }
            if c.telemetry_sent > 0 {
                println!("telemetry: {} events sent", c.telemetry_sent);
            }
        }
        Err(e) => tracing::warn!(error = %e, "check-in failed"),
    })?;
    tracing::info!("stopped");
    Ok(())
}

fn status(store: &std::path::Path) -> Result<()> {
    let s = outpost_store::Store::open_reader(store)?;
    for (model, p) in s.models()? {
        let version = s
            .installed_manifest(&model, &p.active)?
            .map_or_else(|| "unknown".into(), |m| m.manifest.model_version);
        println!(
            "{model}: {version} ({}){}",
            p.active,
            p.previous
                .map(|d| format!(", previous {d}"))
                .unwrap_or_default()
        );
    }
    let spool = outpost_store::spool::Spool::open(
        &s.spool_path(),
        outpost_store::spool::DEFAULT_MAX_EVENTS,
    )?;
    let st = spool.stats()?;
    println!(
        "telemetry spool: {} events waiting, {} dropped when full, {} batches delivered",
        st.pending, st.dropped, st.acked_batches
    );
    Ok(())
}

/// The canary child: reads the agent's tagged canary set on stdin, runs it
/// through the model and prints what it measured (see
/// `outpost_agent::canary`).
fn canary(model: &std::path::Path, threads: Option<u32>) -> Result<()> {
    /// What `outpost_agent::CanarySet` writes.
    #[derive(serde::Deserialize)]
    #[serde(tag = "kind", content = "canaries", rename_all = "snake_case")]
    enum Set {
        Generate(Vec<Canary>),
        Embedding(Vec<EmbeddingCanary>),
    }
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let set: Set = serde_json::from_slice(&input).context("canaries on stdin")?;
    match set {
        Set::Generate(canaries) => {
            // A sealed model arrives as an inherited memfd: lock it in RAM.
            let opts = outpost_engine::LoadOptions {
                mlock: model.starts_with("/proc/self/fd"),
                ..outpost_engine::LoadOptions::default()
            };
            let m = outpost_engine::Model::load(model, &opts)
                .with_context(|| format!("loading {}", model.display()))?;
            let c = outpost_variants::fingerprint::check(&m, &canaries, threads)?;
            let kld = if c.kld.is_finite() {
                serde_json::json!(c.kld)
            } else {
                serde_json::json!(1e300)
            };
            println!(
                "{}",
                serde_json::json!({"kld": kld, "same_top": c.same_top})
            );
        }
        Set::Embedding(canaries) => {
            let e = crate::embed::start(model, threads)
                .with_context(|| format!("loading {}", model.display()))?;
            let inputs = canaries
                .iter()
                .map(|c| e.tokenize(&c.text, true))
                .collect::<Result<Vec<_>, _>>()?;
            let vectors = e.embed(inputs)?;
            // A vector of another width or not finite makes it null (a
            // failure).
            let worst = outpost_variants::fingerprint::worst_cosine(&canaries, &vectors);
            println!("{}", serde_json::json!({ "min_cosine": worst }));
        }
    }
    Ok(())
}
