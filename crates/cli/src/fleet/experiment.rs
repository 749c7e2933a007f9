//! `outpost fleet experiment`: A/B experiments between two releases of a
//! model on a channel (create, list, status, stop, ship) over the admin
//! API, with readable tables or `--json`.

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::print::{list, s, table};
use super::{release_ref, Api, Out};

#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// Start an experiment: --split percent of the targeted devices get the
    /// treatment (a sticky hash: a device keeps its arm), the rest keep the
    /// control, which must be the channel's release. It never advances by
    /// itself; the automatic halt watches the treatment as any rollout's.
    /// `status` shows exposure and, per device class and metric, the
    /// difference with an always-valid interval (safe to read at any time)
    /// and a decision: ship, stop or keep running.
    ///
    /// Metrics: ttft_p50, latency_p50, tok_s (compared as means, p50 shown),
    /// thumbs_down_rate, regenerate_rate, error_rate, crash_rate.
    ///
    /// Examples:
    ///   outpost fleet experiment create --control smollm2-135m@2025-06 \
    ///       --treatment smollm2-135m@2025-07 --split 50 --where class=phone-4gb \
    ///       --metrics ttft_p50,tok_s,thumbs_down_rate,regenerate_rate,crash_rate
    #[command(verbatim_doc_comment)]
    Create(CreateArgs),
    /// Every experiment: arms, state, decision.
    List,
    /// One experiment: exposure per class, every class × metric with its
    /// interval and verdict, the decision and why.
    Status { id: u64 },
    /// End it: every device returns to the control. The analysis is kept
    /// as it was.
    Stop {
        id: u64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// End it: the treatment becomes the channel's release for every
    /// device. The analysis is kept as it was.
    Ship {
        id: u64,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// MODEL@VERSION: the channel's release now.
    #[arg(long)]
    control: String,
    /// MODEL@VERSION.
    #[arg(long)]
    treatment: String,
    #[arg(long, default_value = "stable")]
    channel: String,
    /// Percent of the targeted devices that get the treatment (0-100, exclusive).
    #[arg(long, default_value_t = 50.0)]
    split: f64,
    /// class=NAME[,NAME...] (repeatable): the device classes in the
    /// experiment; default every class.
    #[arg(long = "where", value_name = "class=NAME")]
    filters: Vec<String>,
    /// Comma-separated metrics.
    #[arg(
        long,
        default_value = "ttft_p50,tok_s,thumbs_down_rate,regenerate_rate,crash_rate"
    )]
    metrics: String,
    /// The experiment-wide chance of a false call.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
}

fn classes(filters: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in filters {
        let Some((key, value)) = f.split_once('=') else {
            bail!("--where {f:?} is not KEY=VALUE; use --where class=phone-4gb");
        };
        if key.trim() != "class" {
            bail!(
                "--where {f:?}: experiments target device classes only (each arm is compared per class from the cohort telemetry); use --where class=NAME"
            );
        }
        out.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string),
        );
    }
    Ok(out)
}

pub(super) fn run(api: &Api, cmd: &ExperimentCommand, out: Out<'_>) -> Result<()> {
    let v = match cmd {
        ExperimentCommand::Create(c) => {
            let (ctl, trt) = (release_ref(&c.control)?, release_ref(&c.treatment)?);
            if ctl.model != trt.model {
                bail!(
                    "--control {ctl} and --treatment {trt} are different models; an experiment compares two releases of one model"
                );
            }
            let metrics: Vec<&str> = c.metrics.split(',').map(str::trim).collect();
            for m in &metrics {
                outpost_fleet::experiment::Metric::parse(m)
                    .map_err(|e| anyhow!("--metrics: {e}"))?;
            }
            api.send(
                "POST",
                "/admin/v1/experiments",
                json!({
                    "model": ctl.model, "control": ctl.version, "treatment": trt.version,
                    "channel": c.channel, "split_percent": c.split,
                    "device_classes": classes(&c.filters)?, "metrics": metrics, "alpha": c.alpha,
                }),
            )?
        }
        ExperimentCommand::List => {
            out(&api.get("/admin/v1/experiments")?, &experiments);
            return Ok(());
        }
        ExperimentCommand::Status { id } => api.get(&format!("/admin/v1/experiments/{id}"))?,
        ExperimentCommand::Stop { id, reason } | ExperimentCommand::Ship { id, reason } => {
            let what = if matches!(cmd, ExperimentCommand::Ship { .. }) {
                "ship"
            } else {
                "stop"
            };
            api.send(
                "POST",
                &format!("/admin/v1/experiments/{id}/{what}"),
                json!({ "reason": reason }),
            )?
        }
    };
    out(&v, &status);
    Ok(())
}

fn experiments(v: &Value) {
    let rows = list(v)
        .iter()
        .map(|e| {
            vec![
                s(&e["id"]),
                s(&e["model"]),
                format!("{} vs {}", s(&e["treatment"]), s(&e["control"])),
                s(&e["channel"]),
                format!("{} %", s(&e["split_percent"])),
                s(&e["state"]),
                s(&e["decision"]),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "MODEL",
            "TREATMENT VS CONTROL",
            "CHANNEL",
            "SPLIT",
            "STATE",
            "DECISION",
        ],
        rows,
    );
}

fn status(e: &Value) {
    let classes = list(&e["device_classes"]);
    println!(
        "experiment {}: {} {} (treatment) vs {} (control) on {}, {} % split, {}; {}",
        s(&e["id"]),
        s(&e["model"]),
        s(&e["treatment"]),
        s(&e["control"]),
        s(&e["channel"]),
        s(&e["split_percent"]),
        if classes.is_empty() {
            "every class".to_string()
        } else {
            format!(
                "classes {}",
                classes.iter().map(s).collect::<Vec<_>>().join(", ")
            )
        },
        s(&e["state"])
    );
    if !e["reason"].is_null() {
        println!("reason: {}", s(&e["reason"]));
    }
    let exposure = list(&e["exposure"])
        .iter()
        .map(|x| {
            vec![
                s(&x["device_class"]),
                s(&x["control_devices"]),
                s(&x["treatment_devices"]),
            ]
        })
        .collect();
    table(&["CLASS", "CONTROL DEVICES", "TREATMENT DEVICES"], exposure);
    let f = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.4}"));
    let results = list(&e["results"])
        .iter()
        .map(|r| {
            let arm = |a: &Value| match a["p50"].as_f64() {
                Some(p) => format!("{} (p50 {p:.1}, n {})", f(&a["value"]), s(&a["n"])),
                None => format!("{} (n {})", f(&a["value"]), s(&a["n"])),
            };
            vec![
                s(&r["device_class"]),
                s(&r["metric"]),
                arm(&r["control"]),
                arm(&r["treatment"]),
                f(&r["diff"]),
                format!("{}..{}", f(&r["low"]), f(&r["high"])),
                s(&r["verdict"]),
            ]
        })
        .collect();
    table(
        &[
            "CLASS",
            "METRIC",
            "CONTROL",
            "TREATMENT",
            "DIFF",
            "INTERVAL",
            "VERDICT",
        ],
        results,
    );
    println!(
        "decision: {} — {}",
        s(&e["decision"]),
        s(&e["decision_reason"])
    );
}
