//! `outpost fleet serve` (the control plane in this process) and `outpost
//! fleet migrate` (a fleet's database copied into another).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use outpost_fleet::db::DbUrl;

use super::{parse_duration, parse_size, FleetArgs};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The database: sqlite:PATH (default: DIR/fleet.db, nothing to set
    /// up) or postgres://USER:PASSWORD@HOST:PORT/DATABASE (created when
    /// missing and the role may; `?sslmode=require` for TLS).
    #[arg(
        long,
        env = "OUTPOST_FLEET_DB",
        value_name = "URL",
        hide_env_values = true
    )]
    db: Option<String>,
    /// Where model bytes live: file:DIR (default: DIR/store) or
    /// s3://BUCKET/PREFIX on any S3-compatible store (AWS_ENDPOINT_URL,
    /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY from the
    /// environment; AWS_ALLOW_HTTP=true for a plain-HTTP endpoint). With S3,
    /// devices download from short-lived pre-signed URLs, not through the
    /// fleet.
    #[arg(long, env = "OUTPOST_FLEET_BLOBS", value_name = "URL")]
    blobs: Option<String>,
    #[arg(long, default_value_t = 8700)]
    port: u16,
    /// Manifest lifetime: 7d by default.
    #[arg(long, default_value = "7d")]
    manifest_ttl: String,
    /// Check-in interval told to devices.
    #[arg(long, default_value = "1h")]
    check_in_interval: String,
    /// The automatic halt's thresholds as JSON (fields of
    /// outpost_fleet::health::HaltPolicy; those left out keep their
    /// defaults), e.g. {"min_devices": 50, "rollback": true}.
    #[arg(long, value_name = "FILE")]
    halt_policy: Option<PathBuf>,
    /// Cap every artifact download (GET /v1/artifacts/DIGEST) to this many
    /// bytes per second per response, e.g. 5MB (a 50 MB blob then takes
    /// about 10 s). For testing devices against slow or interrupted
    /// downloads; Range requests are paced the same way. Default: no cap.
    #[arg(long, value_name = "BYTES")]
    throttle_bytes_per_s: Option<String>,
    /// Seal every release: `outpost fleet publish` encrypts by default,
    /// and a plain release is refused (409).
    #[arg(long)]
    seal_releases: bool,
    /// Clients reach this fleet over HTTPS (a TLS proxy in front): mark
    /// console session cookies Secure. (A proxy that sends
    /// `X-Forwarded-Proto: https` gets them Secure anyway.)
    #[arg(long)]
    secure_cookies: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The database to copy: sqlite:PATH or postgres://…
    #[arg(long, value_name = "URL")]
    from: String,
    /// The empty database to copy into: sqlite:PATH or postgres://…
    #[arg(long, value_name = "URL")]
    to: String,
}

/// `--db`, `--from`, `--to`: a database URL, or an error that says which
/// flag and what is accepted.
fn db_url(flag: &str, s: &str) -> Result<DbUrl> {
    s.parse::<DbUrl>().map_err(|e| anyhow!("{flag}: {e}"))
}

pub fn migrate(m: &MigrateArgs) -> Result<()> {
    let from = db_url("--from", &m.from)?;
    let to = db_url("--to", &m.to)?;
    if let DbUrl::Sqlite(p) = &from {
        if !p.is_file() {
            bail!("--from {from}: no such file (a fleet's database is DIR/fleet.db)");
        }
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let bar = indicatif::ProgressBar::new(outpost_fleet::db::copy::TABLE_COUNT as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} tables  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = rt
        .block_on(outpost_fleet::db::copy::migrate(
            &from,
            &to,
            |table, rows| {
                bar.set_message(format!("{table}: {rows} rows"));
                bar.inc(1);
            },
        ))
        .with_context(|| format!("copying {from} into {to}"))?;
    bar.finish_and_clear();
    let total: u64 = report.iter().map(|(_, n)| n).sum();
    println!("copied {total} rows from {from} into {to}:");
    for (table, n) in report.iter().filter(|(_, n)| *n > 0) {
        println!("  {table:<20} {n:>10}");
    }
    println!("now start the fleet on it: outpost fleet serve --data DIR --db '{to}' (the password as you gave it)");
    Ok(())
}

pub fn serve(args: &FleetArgs, s: &ServeArgs) -> Result<()> {
    let dir = args.data.clone().ok_or_else(|| {
        anyhow!("serve needs --data DIR (where the database, blobs and keys live)")
    })?;
    let mut config = outpost_fleet::FleetConfig::new(&dir);
    if let Some(u) = &s.db {
        config.db = Some(db_url("--db", u)?);
    }
    if let Some(b) = &s.blobs {
        config.blobs = Some(b.parse().map_err(|e| anyhow!("--blobs: {e}"))?);
    }
    let db_shown = config.db_url().to_string();
    let blobs_shown = config.blobs_url().to_string();
    config.admin_token = args.token.clone();
    config.manifest_ttl_s = parse_duration(&s.manifest_ttl)?;
    config.check_in_interval_s = parse_duration(&s.check_in_interval)?;
    if let Some(p) = &s.halt_policy {
        let text =
            std::fs::read(p).with_context(|| format!("reading the halt policy {}", p.display()))?;
        config.halt = serde_json::from_slice(&text)
            .with_context(|| format!("the halt policy {} is not valid", p.display()))?;
    }
    if let Some(t) = &s.throttle_bytes_per_s {
        let rate = parse_size(t).context("--throttle-bytes-per-s")?;
        if rate == 0 {
            bail!("--throttle-bytes-per-s {t:?} would stop every download; give a rate above 0 (e.g. 5MB) or leave the option out");
        }
        config.throttle_bytes_per_s = Some(rate);
    }
    config.seal_releases = s.seal_releases;
    config.secure_cookies = s.secure_cookies;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let fleet = outpost_fleet::Fleet::open(config, Arc::new(outpost_fleet::SystemClock))
            .await
            .with_context(|| format!("opening the fleet in {}", dir.display()))?;
        let addr = format!("{}:{}", s.host, s.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        tracing::info!(
            "fleet listening on http://{local} (data {}, database {db_shown}, blobs {blobs_shown}, signing key {}; admin token in {}, app key in {})",
            dir.display(),
            fleet.signer().key_id(),
            if args.token.is_some() { "OUTPOST_FLEET_ADMIN_TOKEN".to_string() } else { dir.join("admin.token").display().to_string() },
            dir.join("app.key").display()
        );
        outpost_fleet::serve(listener, fleet, shutdown_signal()).await?;
        tracing::info!("fleet stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
