//! Logging for every subcommand: `tracing` events to stderr, filtered by
//! `--log-level` (else `RUST_LOG`, else `info`), written as text for people
//! or as one JSON object a line (`--log-format json`) for machines.
//! llama.cpp's own log arrives here at debug level (target `llama_cpp`).
//!
//! Messages meant for the person at the terminal (progress, prompts, the
//! final `error:` line in text mode) stay plain `eprintln!`s; what a daemon
//! reports (listening, loaded, stopped, retries, refusals) is an event.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object a line: timestamp, level, target, fields, and the
    /// request span (with its request_id) of lines logged while serving one.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// What to log: a level (error, warn, info, debug, trace) or a filter
    /// in RUST_LOG syntax (`info,outpost_server=debug,llama_cpp=off`).
    /// Default: $RUST_LOG, else info.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// How log lines look on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// Installs the global subscriber. A bad filter is an error that names
    /// the value, not a silent fallback.
    pub fn init(&self) -> anyhow::Result<()> {
        let filter = match (&self.log_level, std::env::var("RUST_LOG")) {
            (Some(f), _) => EnvFilter::try_new(f).map_err(|e| {
                anyhow::anyhow!(
                    "--log-level {f:?}: {e} (try info, debug or `info,outpost_server=debug`)"
                )
            })?,
            (None, Ok(f)) if !f.trim().is_empty() => EnvFilter::try_new(&f).map_err(|e| {
                anyhow::anyhow!(
                    "RUST_LOG={f:?}: {e} (try info, debug or `info,outpost_server=debug`)"
                )
            })?,
            _ => EnvFilter::new("info"),
        };
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Text => builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false)
                .try_init(),
            LogFormat::Json => builder
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .try_init(),
        }
        .map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
    }

    pub fn json(&self) -> bool {
        self.log_format == LogFormat::Json
    }
}
