//! `outpost fleet`: run the control plane (`serve`) and drive it through
//! its admin API (every other command), with readable tables or `--json`.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use outpost_fleet::api::ReleaseRef;
use serde_json::{json, Value};

mod accounts;
mod economics;
mod experiment;
mod print;
mod publish;
mod serve;
mod simulate;

use serve::ServeArgs;

/// Where the fleet is and how to reach its admin API.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The fleet's address.
    #[arg(
        long,
        global = true,
        env = "OUTPOST_FLEET_URL",
        default_value = "http://127.0.0.1:8700"
    )]
    url: String,
    /// The bootstrap admin token, or an API token from `outpost fleet token
    /// create` (its role decides what it may do). Default: DIR/admin.token
    /// with --data.
    #[arg(
        long,
        global = true,
        env = "OUTPOST_FLEET_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// The fleet's data folder: `serve` keeps everything there; other
    /// commands read the admin token from it.
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Run the control plane: database (SQLite in --data DIR unless --db
    /// names one) + blob store in --data DIR, device API
    /// under /v1, admin API under /admin/v1. On first start it creates the
    /// signing key (DIR/signing.key; devices pin DIR/signing.pub.json), the
    /// admin token (DIR/admin.token) and an app key (DIR/app.key).
    ///
    /// Examples:
    ///   outpost fleet serve --data /var/lib/outpost-fleet
    ///   outpost fleet serve --data ./fleet --host 0.0.0.0 --port 8700
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Copy a fleet's database into another, e.g. from the default SQLite
    /// file to PostgreSQL, while the fleet keeps running (the source is
    /// read in one consistent transaction). The target must be empty; it
    /// is written in one transaction, so a failed copy leaves nothing.
    /// Then restart `outpost fleet serve` with `--db` set to the target.
    ///
    /// Examples:
    ///   outpost fleet migrate --from sqlite:./fleet/fleet.db \
    ///       --to postgres://outpost:PASSWORD@db.internal:5432/outpost
    #[command(verbatim_doc_comment)]
    Migrate(serve::MigrateArgs),
    /// Publish a release from DIR: the output folder of `outpost variants
    /// build` (variants.json beside the tier files; give --version), or a
    /// folder with a hand-written release.json and the GGUF files it
    /// names. Every file is hashed here (and checked against variants.json),
    /// uploaded unless the fleet has it, then the release is recorded. A
    /// release never changes afterwards.
    ///
    /// From variants.json: each tier is a variant (its fingerprints are the
    /// canaries), each recommended device class runs its tier, classes with
    /// no fitting tier are blocked, other classes get the recommendation of
    /// the class with the smallest RAM budget.
    ///
    /// release.json: {"model", "version", "min_app_version", "variants":
    /// [{"file", "quantization", "ggml_types", "memory_bytes",
    /// "min_engine_version", "quality", "fingerprints"}], "classes":
    /// {"phone-8gb": {"variant", "n_ctx", "kv_cache_type", "threads"},
    /// "default": {...}}, "blocked": {"class": "reason"}} (see
    /// crates/fleet/src/meta.rs).
    ///
    /// Examples:
    ///   outpost fleet publish variants/smollm2 --version 1.0.0 --data ./fleet
    ///   outpost fleet publish releases/smollm2-2025-06 --data ./fleet
    ///   outpost fleet publish variants/smollm2 --version 1.1.0 --encrypt --data ./fleet
    ///
    /// Rotating a sealed release's key: publish the same folder again as a
    /// new version with --encrypt (a fresh key, new blobs) and roll it out;
    /// devices that installed the old one keep it until then.
    #[command(verbatim_doc_comment, disable_version_flag = true)]
    Publish {
        dir: PathBuf,
        /// The model version (variants.json folders only; required there).
        #[arg(long)]
        version: Option<String>,
        /// The app whose devices run it (default: release.json's `app`, else
        /// `default`); every release of a model has the same app.
        #[arg(long)]
        app: Option<String>,
        /// Oldest app that may install it (variants.json folders; default 0.1.0).
        #[arg(long, value_name = "MAJOR.MINOR.PATCH")]
        min_app_version: Option<String>,
        /// Oldest engine that may load it (variants.json folders; default 0.1.0).
        #[arg(long, value_name = "MAJOR.MINOR.PATCH")]
        min_engine_version: Option<String>,
        /// Seal every variant under a fresh content key for this release
        /// (XChaCha20-Poly1305 in chunks): devices get the key only wrapped
        /// to their own device key, and never hold the plaintext on disk.
        /// Default: what the fleet says (`serve --seal-releases`).
        #[arg(long, conflicts_with = "no_encrypt")]
        encrypt: bool,
        /// Publish plain GGUF files even where the fleet's default is to seal
        /// (such a fleet then refuses the release).
        #[arg(long)]
        no_encrypt: bool,
        /// Plaintext bytes per sealed chunk, 1MiB to 4MiB: each chunk is
        /// verified on its own.
        #[arg(long, default_value = "1MiB", value_name = "SIZE")]
        chunk_size: String,
    },
    /// Make a release the channel's release now, for every device on it (no
    /// stages; use `rollout create` for a staged move).
    ///
    /// Examples:
    ///   outpost fleet release smollm2-135m@2025-06 --channel stable
    #[command(verbatim_doc_comment)]
    Release {
        release: String,
        #[arg(long, default_value = "stable")]
        channel: String,
    },
    /// Staged rollouts: create, list, advance, pause, resume, complete,
    /// rollback.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// A/B experiments between two releases: create, list, status, stop,
    /// ship (per-class results with always-valid intervals).
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
    /// Console users: add (password on stdin), list, delete (admin).
    #[command(subcommand)]
    User(accounts::UserCommand),
    /// API tokens for CI, scoped to a role and expiring: create (shown
    /// once), list, revoke (admin).
    #[command(subcommand)]
    Token(accounts::TokenCommand),
    /// App keys devices register with, each for one app: create (admin).
    #[command(subcommand)]
    AppKey(accounts::AppKeyCommand),
    /// Pin a device to a release (it gets it whatever its channel runs), or
    /// --clear the pin of a model.
    ///
    /// Examples:
    ///   outpost fleet pin dev-3f2a... smollm2-135m@2025-05
    ///   outpost fleet pin dev-3f2a... smollm2-135m --clear
    #[command(verbatim_doc_comment)]
    Pin {
        device: String,
        /// MODEL@VERSION, or MODEL with --clear.
        release: String,
        #[arg(long)]
        clear: bool,
    },
    /// Revoke a release: no device gets it again; its devices fall back to
    /// the newest earlier release they can load at their next check-in.
    ///
    /// Examples:
    ///   outpost fleet revoke smollm2-135m@2025-06 --reason "wrong answers in French"
    #[command(verbatim_doc_comment)]
    Revoke {
        release: String,
        #[arg(long)]
        reason: String,
    },
    /// Revoke a device: the fleet releases no content key of a sealed
    /// model to it again (what it installed before stays on it, sealed;
    /// the serve process there keeps its kept key). Audited.
    ///
    /// Examples:
    ///   outpost fleet revoke-device dev-3f2a...
    #[command(verbatim_doc_comment)]
    RevokeDevice { device: String },
    /// Kill switch: freeze every rollout (no stage moves, by hand or by
    /// timer), optionally revoking releases in the same step.
    ///
    /// Examples:
    ///   outpost fleet freeze --reason "crash spike" --revoke smollm2-135m@2025-06
    #[command(verbatim_doc_comment)]
    Freeze {
        #[arg(long)]
        reason: String,
        #[arg(long, value_name = "MODEL@VERSION")]
        revoke: Vec<String>,
    },
    /// Release the kill switch.
    Unfreeze,
    /// Create a custom channel (stable, beta and canary always exist).
    ///
    /// Examples:
    ///   outpost fleet channel dogfood
    #[command(verbatim_doc_comment)]
    Channel { name: String },
    /// List devices: class, OS, app, what they run, when last seen.
    ///
    /// Examples:
    ///   outpost fleet devices --channel beta --class phone-4gb
    ///   outpost fleet devices --limit 1000 --json
    #[command(verbatim_doc_comment)]
    Devices {
        #[arg(long)]
        channel: Option<String>,
        #[arg(long)]
        class: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// The fleet on one page: kill switch, channels, rollouts, releases,
    /// devices and how many are blocked by compatibility.
    ///
    /// Examples:
    ///   outpost fleet status
    ///   outpost fleet status --json | jq .rollouts
    #[command(verbatim_doc_comment)]
    Status,
    /// Telemetry per cohort (device class × channel × release) over the
    /// last MINUTES: devices, inferences, error/crash/canary-failure rates,
    /// latency percentiles (ms), median tok/s, share routed to the cloud.
    /// Minutes older than about 2 hours are kept as hourly sums, so a
    /// window reaching back that far counts each such hour it overlaps
    /// whole.
    ///
    /// Examples:
    ///   outpost fleet cohorts
    ///   outpost fleet cohorts --minutes 1440 --json
    #[command(verbatim_doc_comment)]
    Cohorts {
        #[arg(long, default_value_t = 60)]
        minutes: u64,
    },
    /// The edge-vs-cloud report from route telemetry: requests, tokens and
    /// latency per route and cohort, cloud spend, what the device saved,
    /// battery per 1 000 local tokens, and --what-if thresholds replayed.
    ///
    /// Examples:
    ///   outpost fleet economics --prices prices.toml --minutes 1440 --what-if 0.4,0.7
    #[command(verbatim_doc_comment)]
    Economics(economics::EconomicsArgs),
    /// How the fleet is spread: devices per release × channel × class,
    /// devices not seen for --stale-days, devices blocked by compatibility,
    /// and for each live or completed rollout how many targeted devices
    /// run its release and how long after it began 50, 90, 99 and 100 %
    /// of them had first been issued it (or "not yet, at N %").
    ///
    /// Examples:
    ///   outpost fleet fragmentation --stale-days 3
    #[command(verbatim_doc_comment)]
    Fragmentation {
        #[arg(long, default_value_t = 7)]
        stale_days: u64,
    },
    /// Simulated devices against a running fleet: they register, check
    /// in, and send telemetry for what they were assigned, for --rounds
    /// rounds; devices with an offline period (--mix offline_rate) skip
    /// rounds, keep their telemetry and deliver it when they are back
    /// (exactly once: the fleet answers a resent batch id as duplicate).
    /// One class can get an injected regression. Prints devices per
    /// release × class after the last round (what `fleet fragmentation`
    /// must show), then check-ins/s, check-in latency p50/p99, telemetry
    /// events/s, and the peak memory of the simulator and of the fleet
    /// (the fleet's needs the admin token: --data or --token).
    ///
    /// Examples:
    ///   outpost fleet simulate --devices 1000 --data ./fleet
    ///   outpost fleet simulate --devices 100000 --threads 32 --rounds 2 --events 5 --data ./fleet
    ///   outpost fleet simulate --devices 500 --regress-class phone-4gb --regress-version 2025-07
    #[command(verbatim_doc_comment)]
    Simulate(simulate::SimulateArgs),
    /// The audit log, newest first.
    Audit {
        #[arg(long, default_value_t = 30)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Start moving a release onto a channel in stages. Each stage runs
    /// --soak before the next (0: only by hand); devices are picked by a
    /// sticky hash, so raising the percentage only adds devices. Targeting
    /// flags limit who can be picked.
    ///
    /// Examples:
    ///   outpost fleet rollout create smollm2-135m@2025-06 --channel stable --stages 1,5,25,100 --soak 1h
    ///   outpost fleet rollout create smollm2-135m@2025-06 --channel beta --stages 10,100 --soak 0 \
    ///       --class phone-8gb --os android --min-app 2.1.0 --region eu-west --min-ram 6GiB
    #[command(verbatim_doc_comment)]
    Create(Box<CreateArgs>),
    /// List rollouts with their stage, share and devices.
    List,
    /// Go to the next stage now (past the last: complete).
    Advance { id: u64 },
    /// Hold the current stage: its devices stay, the timer stops.
    Pause {
        id: u64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Continue a paused rollout; the stage's soak starts again.
    Resume { id: u64 },
    /// Make the release the channel's release for every device now.
    Complete { id: u64 },
    /// Send the rollout's devices back to the channel's previous release
    /// (a new manifest with a higher version at their next check-in).
    Rollback {
        id: u64,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    release: String,
    #[arg(long, default_value = "stable")]
    channel: String,
    /// Percentages, rising, comma-separated.
    #[arg(long, default_value = "1,5,25,100")]
    stages: String,
    /// Time per stage: 90s, 30m, 1h, 2d, or seconds.
    #[arg(long, default_value = "1h")]
    soak: String,
    #[arg(long = "class", value_name = "DEVICE_CLASS")]
    classes: Vec<String>,
    #[arg(long)]
    os: Vec<String>,
    #[arg(long = "region")]
    regions: Vec<String>,
    #[arg(long, value_name = "VERSION")]
    min_app: Option<String>,
    #[arg(long, value_name = "VERSION")]
    max_app: Option<String>,
    /// e.g. 4GiB, 512MiB, 8GB or bytes.
    #[arg(long, value_name = "SIZE")]
    min_ram: Option<String>,
}

pub fn fleet(args: FleetArgs) -> Result<()> {
    match args.command {
        FleetCommand::Serve(ref s) => serve::serve(&args, s),
        FleetCommand::Migrate(ref m) => serve::migrate(m),
        FleetCommand::Simulate(ref a) => {
            let mut v = simulate::run(args.url.trim_end_matches('/'), args.data.as_deref(), a)?;
            // The fleet's own memory, when the admin token is at hand.
            if let Some(status) = Api::new(&args)
                .ok()
                .and_then(|api| api.get("/admin/v1/status").ok())
            {
                v["fleet_memory"] = status["memory"].clone();
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print::simulation(&v);
            }
            Ok(())
        }
        ref cmd => {
            let api = Api::new(&args)?;
            run(&api, cmd, args.json)
        }
    }
}

/// `90s`, `30m`, `1h`, `2d` or plain seconds.
pub fn parse_duration(s: &str) -> Result<u64> {
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("{s:?} is not a duration like 90s, 30m, 1h, 2d or seconds"))?;
    Ok(n * mult)
}

/// `4GiB`, `512MiB`, `8GB`, `100KB` or plain bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let units = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1000),
        ("B", 1),
    ];
    let (num, mult) = units
        .iter()
        .find_map(|(u, m)| s.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((s, 1));
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow!("{s:?} is not a size like 4GiB, 512MiB, 8GB or bytes"))?;
    if !(n >= 0.0 && n.is_finite()) {
        bail!("{s:?} is not a size");
    }
    Ok((n * mult as f64) as u64)
}

/// The admin API over blocking HTTP.
struct Api {
    url: String,
    auth: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(args: &FleetArgs) -> Result<Api> {
        let token = match (&args.token, &args.data) {
            (Some(t), _) => t.clone(),
            (None, Some(dir)) => {
                let p = dir.join("admin.token");
                std::fs::read_to_string(&p)
                    .with_context(|| format!("reading the admin token from {}", p.display()))?
                    .trim()
                    .to_string()
            }
            (None, None) => bail!(
                "no admin token: pass --token, set OUTPOST_FLEET_ADMIN_TOKEN, or --data DIR to read DIR/admin.token"
            ),
        };
        Ok(Api {
            url: args.url.trim_end_matches('/').to_string(),
            auth: format!("Bearer {token}"),
            agent: ureq::AgentBuilder::new().build(),
        })
    }

    fn answer(&self, what: &str, r: Result<ureq::Response, ureq::Error>) -> Result<Value> {
        match r {
            Ok(resp) => Ok(resp.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, resp)) => {
                let body: Value = resp.into_json().unwrap_or(Value::Null);
                let msg = body["error"]["message"].as_str().unwrap_or("(no message)");
                bail!("{what}: the fleet answered {code}: {msg}")
            }
            Err(e) => Err(anyhow!(
                "{what}: cannot reach the fleet at {}: {e}",
                self.url
            )),
        }
    }

    fn get(&self, path: &str) -> Result<Value> {
        let r = self
            .agent
            .get(&format!("{}{path}", self.url))
            .set("authorization", &self.auth)
            .call();
        self.answer(&format!("GET {path}"), r)
    }

    fn send(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let r = self
            .agent
            .request(method, &format!("{}{path}", self.url))
            .set("authorization", &self.auth)
            .send_json(body);
        self.answer(&format!("{method} {path}"), r)
    }
}

fn release_ref(s: &str) -> Result<ReleaseRef> {
    ReleaseRef::parse(s).map_err(|e| anyhow!(e))
}

fn run(api: &Api, cmd: &FleetCommand, json_out: bool) -> Result<()> {
    let out = |v: &Value, table: &dyn Fn(&Value)| {
        if json_out {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            table(v);
        }
    };
    match cmd {
        FleetCommand::Serve(_) | FleetCommand::Migrate(_) | FleetCommand::Simulate(_) => {
            unreachable!("handled by fleet()")
        }
        FleetCommand::Publish {
            dir,
            version,
            app,
            min_app_version,
            min_engine_version,
            encrypt,
            no_encrypt,
            chunk_size,
        } => {
            let v = publish::run(
                api,
                &publish::Publish {
                    dir,
                    version,
                    app,
                    min_app_version,
                    min_engine_version,
                    encrypt: (*encrypt || *no_encrypt).then_some(*encrypt),
                    chunk_size,
                },
            )?;
            out(&v, &|v| {
                println!(
                    "published {}@{} ({} variants)",
                    v["meta"]["model"].as_str().unwrap_or("?"),
                    v["meta"]["version"].as_str().unwrap_or("?"),
                    v["meta"]["variants"].as_array().map_or(0, Vec::len)
                )
            });
        }
        FleetCommand::Release { release, channel } => {
            let r = release_ref(release)?;
            let v = api.send(
                "POST",
                &format!("/admin/v1/channels/{channel}/release"),
                json!({"model": r.model, "version": r.version}),
            )?;
            out(&v, &|_| println!("{channel} now runs {r}"));
        }
        FleetCommand::Rollout(rc) => rollout(api, rc, &out)?,
        FleetCommand::Experiment(c) => experiment::run(api, c, &out)?,
        FleetCommand::User(c) => accounts::run_user(api, c, &out)?,
        FleetCommand::Token(c) => accounts::run_token(api, c, &out)?,
        FleetCommand::AppKey(c) => accounts::run_app_key(api, c, &out)?,
        FleetCommand::Economics(e) => economics::run(api, e, &out)?,
        FleetCommand::Pin {
            device,
            release,
            clear,
        } => {
            let v = if *clear {
                api.send(
                    "DELETE",
                    &format!("/admin/v1/devices/{device}/pins/{release}"),
                    json!({}),
                )?
            } else {
                let r = release_ref(release)?;
                api.send(
                    "POST",
                    &format!("/admin/v1/devices/{device}/pins"),
                    json!({"model": r.model, "version": r.version}),
                )?
            };
            out(&v, &|v| println!("{device} pins: {}", v["pins"]));
        }
        FleetCommand::Revoke { release, reason } => {
            let r = release_ref(release)?;
            let v = api.send(
                "POST",
                "/admin/v1/revoke",
                json!({"model": r.model, "version": r.version, "reason": reason}),
            )?;
            out(&v, &|_| {
                println!("{r} revoked; its devices fall back at their next check-in")
            });
        }
        FleetCommand::Freeze { reason, revoke } => {
            let refs = revoke
                .iter()
                .map(|r| release_ref(r))
                .collect::<Result<Vec<_>>>()?;
            let v = api.send(
                "POST",
                "/admin/v1/kill-switch",
                json!({"freeze": true, "reason": reason, "revoke": refs}),
            )?;
            out(&v, &print::status);
        }
        FleetCommand::Unfreeze => {
            let v = api.send("POST", "/admin/v1/kill-switch", json!({"freeze": false}))?;
            out(&v, &print::status);
        }
        FleetCommand::Channel { name } => {
            let v = api.send("POST", "/admin/v1/channels", json!({"name": name}))?;
            out(&v, &|_| println!("channel {name} created"));
        }
        FleetCommand::Devices {
            channel,
            class,
            limit,
        } => {
            let mut q = format!("/admin/v1/devices?limit={limit}");
            if let Some(c) = channel {
                q.push_str(&format!("&channel={c}"));
            }
            if let Some(c) = class {
                q.push_str(&format!("&class={c}"));
            }
            out(&api.get(&q)?, &print::devices);
        }
        FleetCommand::RevokeDevice { device } => {
            let v = api.send(
                "POST",
                &format!("/admin/v1/devices/{device}/revoke"),
                json!({}),
            )?;
            out(&v, &|_| {
                println!("{device} revoked: no content key is released to it again")
            });
        }
        FleetCommand::Status => out(&api.get("/admin/v1/status")?, &print::status),
        FleetCommand::Cohorts { minutes } => out(
            &api.get(&format!("/admin/v1/cohorts?minutes={minutes}"))?,
            &print::cohorts,
        ),
        FleetCommand::Fragmentation { stale_days } => out(
            &api.get(&format!("/admin/v1/fragmentation?stale_days={stale_days}"))?,
            &print::fragmentation,
        ),
        FleetCommand::Audit { limit } => out(
            &api.get(&format!("/admin/v1/audit?limit={limit}"))?,
            &print::audit,
        ),
    }
    Ok(())
}

/// Prints a JSON answer or its table.
type Out<'a> = &'a dyn Fn(&Value, &dyn Fn(&Value));

fn rollout(api: &Api, rc: &RolloutCommand, out: Out<'_>) -> Result<()> {
    let action = |id: &u64, name: &str, reason: &Option<String>| -> Result<Value> {
        api.send(
            "POST",
            &format!("/admin/v1/rollouts/{id}/{name}"),
            json!({"reason": reason}),
        )
    };
    let v = match rc {
        RolloutCommand::Create(c) => {
            let r = release_ref(&c.release)?;
            let stages = c
                .stages
                .split(',')
                .map(|s| {
                    s.trim()
                        .trim_end_matches('%')
                        .parse::<f64>()
                        .map_err(|_| anyhow!("--stages {:?}: {s:?} is not a number", c.stages))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut target = json!({});
            let t = &mut target;
            if !c.classes.is_empty() {
                t["device_classes"] = json!(c.classes);
            }
            if !c.os.is_empty() {
                t["os"] = json!(c.os);
            }
            if !c.regions.is_empty() {
                t["regions"] = json!(c.regions);
            }
            if let Some(v) = &c.min_app {
                t["min_app_version"] = json!(v);
            }
            if let Some(v) = &c.max_app {
                t["max_app_version"] = json!(v);
            }
            if let Some(s) = &c.min_ram {
                t["min_ram_bytes"] = json!(parse_size(s)?);
            }
            api.send(
                "POST",
                "/admin/v1/rollouts",
                json!({
                    "model": r.model, "version": r.version, "channel": c.channel,
                    "stages": stages, "soak_s": parse_duration(&c.soak)?, "target": target,
                }),
            )?
        }
        RolloutCommand::List => {
            let v = api.get("/admin/v1/rollouts")?;
            out(&v, &print::rollouts);
            return Ok(());
        }
        RolloutCommand::Advance { id } => action(id, "advance", &None)?,
        RolloutCommand::Pause { id, reason } => action(id, "pause", reason)?,
        RolloutCommand::Resume { id } => action(id, "resume", &None)?,
        RolloutCommand::Complete { id } => action(id, "complete", &None)?,
        RolloutCommand::Rollback { id, reason } => action(id, "rollback", reason)?,
    };
    out(&v, &|v| print::rollouts(&json!([v])));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("90s").ok(), Some(90));
        assert_eq!(parse_duration("2d").ok(), Some(172_800));
        assert_eq!(parse_duration("15").ok(), Some(15));
        assert!(parse_duration("1w").is_err());
        assert_eq!(parse_size("4GiB").ok(), Some(4 << 30));
        assert_eq!(parse_size("8GB").ok(), Some(8_000_000_000));
        assert_eq!(parse_size("1.5MiB").ok(), Some(1_572_864));
        assert!(parse_size("lots").is_err());
    }
}
