//! `outpost fleet economics`: the edge-vs-cloud cost report over the last
//! MINUTES of route telemetry, priced with a TOML file, with what-if lines
//! at other complexity thresholds (the maths is
//! `outpost_fleet::economics`; this fetches the cohorts and prints).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use outpost_fleet::economics::{report, EconomicsReport, Prices};
use outpost_fleet::telemetry::CohortView;

use super::print::table;
use super::{Api, Out};

#[derive(Debug, Args)]
pub struct EconomicsArgs {
    /// The window: the last MINUTES of telemetry.
    #[arg(long, default_value_t = 1440)]
    minutes: u64,
    /// Prices, TOML:
    ///   currency = "USD"
    ///   [cloud]
    ///   input_per_1m_tokens = 0.15
    ///   output_per_1m_tokens = 0.60
    ///   [local]                 # optional: what a device run costs you
    ///   per_1m_tokens = 0.0
    ///   [battery_mwh]           # optional: capacity per device class
    ///   phone-4gb = 15000
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    prices: PathBuf,
    /// Complexity thresholds to replay (0-1 in steps of 0.05), e.g.
    /// 0.4,0.5,0.7: spend and latency had the router used them.
    #[arg(long, value_name = "T,T,...", value_delimiter = ',')]
    what_if: Vec<f64>,
}

pub(super) fn load_prices(path: &Path) -> Result<Prices> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the prices {}", path.display()))?;
    let p: Prices = toml::from_str(&text)
        .with_context(|| format!("the prices {} are not valid", path.display()))?;
    p.validate()
        .map_err(|e| anyhow!("the prices {}: {e}", path.display()))?;
    Ok(p)
}

pub(super) fn run(api: &Api, a: &EconomicsArgs, out: Out<'_>) -> Result<()> {
    let prices = load_prices(&a.prices)?;
    let v = api.get(&format!("/admin/v1/cohorts?minutes={}", a.minutes))?;
    let cohorts: Vec<CohortView> =
        serde_json::from_value(v).context("the fleet's cohorts are not what this CLI reads")?;
    let r = report(&cohorts, &prices, &a.what_if, a.minutes).map_err(|e| anyhow!("{e}"))?;
    out(&serde_json::to_value(&r)?, &|_| print(&r));
    Ok(())
}

fn print(r: &EconomicsReport) {
    let money = |x: f64| format!("{x:.4} {}", r.currency);
    let ms = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.0}"));
    println!(
        "last {} minutes: {} requests on the device, {} in the cloud; cloud spend {}, saved on the device {}",
        r.minutes,
        r.local_requests,
        r.cloud_requests,
        money(r.cloud_spend),
        money(r.saved)
    );
    let rows = r
        .cohorts
        .iter()
        .map(|c| {
            vec![
                c.key.device_class.clone(),
                format!("{}@{}", c.key.model, c.key.model_version),
                c.local.requests.to_string(),
                (c.local.prompt_tokens + c.local.completion_tokens).to_string(),
                ms(c.local.latency_ms_p50),
                c.cloud.requests.to_string(),
                (c.cloud.prompt_tokens + c.cloud.completion_tokens).to_string(),
                ms(c.cloud.latency_ms_p50),
                format!("{:.1}%", c.cloud_share * 100.0),
                money(c.cloud.cost),
                money(c.saved),
                match (c.energy_mwh_per_1k_tokens, c.battery_pct_per_1k_tokens) {
                    (Some(e), _) => format!("{e:.1} mWh"),
                    (None, Some(p)) => format!("{p:.3} %"),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    table(
        &[
            "CLASS",
            "RELEASE",
            "LOCAL",
            "LOCAL TOK",
            "LOCAL P50",
            "CLOUD",
            "CLOUD TOK",
            "CLOUD P50",
            "CLOUD %",
            "SPEND",
            "SAVED",
            "BATTERY/1K TOK",
        ],
        rows,
    );
    let rows = r
        .what_if
        .iter()
        .map(|w| {
            vec![
                w.complexity_threshold
                    .map_or("as run".into(), |t| format!("{t:.2}")),
                w.local_requests.to_string(),
                w.cloud_requests.to_string(),
                format!("+{} / -{}", w.moved_to_cloud, w.moved_to_local),
                money(w.cloud_spend),
                ms(w.latency_ms_mean),
            ]
        })
        .collect();
    table(
        &[
            "THRESHOLD",
            "LOCAL",
            "CLOUD",
            "TO CLOUD / TO LOCAL",
            "SPEND",
            "MEAN MS",
        ],
        rows,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_files_are_checked() {
        let dir = std::env::temp_dir().join(format!("outpost-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("prices.toml");
        std::fs::write(
            &p,
            "[cloud]\ninput_per_1m_tokens = 0.15\noutput_per_1m_tokens = 0.6\n",
        )
        .expect("write");
        let prices = load_prices(&p).expect("prices");
        assert_eq!(prices.currency, "USD");
        std::fs::write(&p, "[cloud]\ninput_per_1m_tokens = 0.15\n").expect("write");
        let e = format!("{:#}", load_prices(&p).expect_err("refused"));
        assert!(e.contains("output_per_1m_tokens"), "{e}");
        std::fs::write(
            &p,
            "[cloud]\ninput_per_1m_tokens = -1\noutput_per_1m_tokens = 1\n",
        )
        .expect("write");
        let e = format!("{:#}", load_prices(&p).expect_err("refused"));
        assert!(e.contains("cloud.input_per_1m_tokens"), "{e}");
        let e = format!(
            "{:#}",
            load_prices(&dir.join("none.toml")).expect_err("missing")
        );
        assert!(e.contains("none.toml"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
