//! Tables for `outpost fleet` answers (the `--json` output is the API's).

use serde_json::Value;

/// Prints rows under `header` (comfy-table; numbers right-aligned).
pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut t = crate::table::table(header);
    for r in rows {
        t.add_row(r);
    }
    crate::table::print(t);
}

pub(super) fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

pub fn rollouts(v: &Value) {
    let rows = list(v)
        .iter()
        .map(|r| {
            let stages: Vec<String> = list(&r["stages"]).iter().map(s).collect();
            vec![
                s(&r["id"]),
                format!("{}@{}", s(&r["model"]), s(&r["version"])),
                s(&r["channel"]),
                s(&r["state"]),
                format!("{} %", s(&r["percent"])),
                format!(
                    "{}/{}: {}",
                    r["stage"].as_u64().unwrap_or(0) + 1,
                    stages.len(),
                    stages.join("→")
                ),
                s(&r["devices_on_release"]),
                s(&r["blocked_devices"]),
                s(&r["next_advance_at"]),
                s(&r["reason"]),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "RELEASE",
            "CHANNEL",
            "STATE",
            "NOW",
            "STAGE",
            "DEVICES",
            "BLOCKED",
            "NEXT ADVANCE",
            "REASON",
        ],
        rows,
    );
}

pub fn status(v: &Value) {
    match &v["frozen"] {
        Value::Null => println!("kill switch: off"),
        f => println!(
            "kill switch: ON since {} ({})",
            s(&f["at"]),
            s(&f["reason"])
        ),
    }
    println!(
        "signing key: {}   devices: {}   blocked by compatibility: {}",
        s(&v["key_id"]),
        s(&v["devices"]),
        s(&v["blocked_devices"])
    );
    println!();
    let rows = list(&v["channels"])
        .iter()
        .map(|c| {
            let rel: Vec<String> = c["releases"]
                .as_object()
                .map(|o| o.iter().map(|(m, r)| format!("{m}@{}", s(r))).collect())
                .unwrap_or_default();
            vec![
                s(&c["name"]),
                s(&c["devices"]),
                if rel.is_empty() {
                    "-".into()
                } else {
                    rel.join(", ")
                },
            ]
        })
        .collect();
    table(&["CHANNEL", "DEVICES", "RUNS"], rows);
    println!();
    let live: Vec<Value> = list(&v["rollouts"])
        .into_iter()
        .filter(|r| matches!(r["state"].as_str(), Some("active" | "paused")))
        .collect();
    if live.is_empty() {
        println!("no live rollouts");
    } else {
        rollouts(&Value::Array(live));
    }
    println!();
    let rows = list(&v["releases"])
        .iter()
        .map(|r| {
            let variants: Vec<String> = list(&r["meta"]["variants"])
                .iter()
                .map(|x| s(&x["quantization"]))
                .collect();
            vec![
                format!("{}@{}", s(&r["meta"]["model"]), s(&r["meta"]["version"])),
                variants.join(","),
                list(&r["channels"])
                    .iter()
                    .map(s)
                    .collect::<Vec<_>>()
                    .join(","),
                s(&r["devices"]),
                s(&r["blocked_devices"]),
                match &r["revoked"] {
                    Value::Null => "-".into(),
                    x => format!("revoked: {}", s(&x["reason"])),
                },
            ]
        })
        .collect();
    table(
        &[
            "RELEASE", "VARIANTS", "CHANNELS", "DEVICES", "BLOCKED", "REVOKED",
        ],
        rows,
    );
    println!();
    let tel = list(&v["telemetry"]);
    if tel.is_empty() {
        println!("telemetry: nothing reported in the last hour");
        return;
    }
    println!("telemetry, last {} minutes:", s(&tel[0]["minutes"]));
    let rows = tel
        .iter()
        .map(|t| {
            vec![
                format!("{}@{}", s(&t["model"]), s(&t["model_version"])),
                s(&t["devices"]),
                s(&t["inferences"]),
                s(&t["embeddings"]),
                pct(&t["error_rate"]),
                num(&t["latency_ms_p95"]),
                num(&t["tok_s_p50"]),
            ]
        })
        .collect();
    table(
        &[
            "RELEASE", "DEVICES", "INFER", "EMBED", "ERR", "LAT95", "TOK/S50",
        ],
        rows,
    );
}

pub fn devices(v: &Value) {
    let rows = list(&v["devices"])
        .iter()
        .map(|d| {
            let p = &d["profile"];
            let runs: Vec<String> = d["assigned"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(m, a)| {
                            format!(
                                "{m}@{} (#{})",
                                s(&a["model_version"]),
                                s(&a["manifest_version"])
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let blocked = d["blocked"].as_object().map_or(0, |o| {
                o.values()
                    .map(|b| b.as_array().map_or(0, Vec::len))
                    .sum::<usize>()
            });
            vec![
                s(&d["id"]),
                s(&d["channel"]),
                s(&p["device_class"]),
                s(&p["os"]),
                s(&p["app_version"]),
                if runs.is_empty() {
                    "-".into()
                } else {
                    runs.join(", ")
                },
                blocked.to_string(),
                s(&d["last_seen_at"]),
            ]
        })
        .collect();
    table(
        &[
            "DEVICE",
            "CHANNEL",
            "CLASS",
            "OS",
            "APP",
            "ASSIGNED",
            "BLOCKED",
            "LAST SEEN",
        ],
        rows,
    );
    println!(
        "({} of {} devices)",
        list(&v["devices"]).len(),
        s(&v["total"])
    );
}

pub fn audit(v: &Value) {
    let rows = list(v)
        .iter()
        .map(|a| {
            vec![
                s(&a["id"]),
                s(&a["at"]),
                s(&a["actor"]),
                s(&a["action"]),
                s(&a["target"]),
                s(&a["detail"]),
            ]
        })
        .collect();
    table(&["ID", "AT", "ACTOR", "ACTION", "TARGET", "DETAIL"], rows);
}

/// A rate as a percentage, a number with one decimal, or `-`.
fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{:.2}%", x * 100.0))
}

fn num(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |x| format!("{x:.1}"))
}

pub fn cohorts(v: &Value) {
    let rows = list(v)
        .iter()
        .map(|c| {
            vec![
                s(&c["device_class"]),
                s(&c["channel"]),
                format!("{}@{}", s(&c["model"]), s(&c["model_version"])),
                s(&c["devices"]),
                s(&c["inferences"]),
                s(&c["embeddings"]),
                pct(&c["error_rate"]),
                pct(&c["crash_rate"]),
                pct(&c["canary_fail_rate"]),
                pct(&c["thumbs_down_rate"]),
                pct(&c["regenerate_rate"]),
                num(&c["ttft_ms_p50"]),
                num(&c["latency_ms_p50"]),
                num(&c["latency_ms_p95"]),
                num(&c["latency_ms_p99"]),
                num(&c["tok_s_p50"]),
                pct(&c["cloud_route_share"]),
            ]
        })
        .collect();
    table(
        &[
            "CLASS",
            "CHANNEL",
            "RELEASE",
            "DEVICES",
            "INFER",
            "EMBED",
            "ERR",
            "CRASH",
            "CANARY-FAIL",
            "DOWN",
            "REGEN",
            "TTFT50",
            "LAT50",
            "LAT95",
            "LAT99",
            "TOK/S50",
            "CLOUD",
        ],
        rows,
    );
}

pub fn fragmentation(v: &Value) {
    let rows = list(&v["cells"])
        .iter()
        .map(|c| {
            vec![
                format!("{}@{}", s(&c["model"]), s(&c["model_version"])),
                s(&c["channel"]),
                s(&c["device_class"]),
                s(&c["devices"]),
            ]
        })
        .collect();
    table(&["RELEASE", "CHANNEL", "CLASS", "DEVICES"], rows);
    println!(
        "{} devices; {} not seen for {} days",
        s(&v["devices"]),
        s(&v["stale"]),
        s(&v["stale_days"])
    );
    for b in list(&v["blocked"]) {
        println!(
            "blocked from {}@{}: {} devices",
            s(&b["model"]),
            s(&b["model_version"]),
            s(&b["devices"])
        );
    }
    for r in list(&v["rollouts"]) {
        println!(
            "rollout {} {}@{} on {} ({}, stage {}%): {} of {} targeted devices on it ({:.1}%)",
            s(&r["id"]),
            s(&r["model"]),
            s(&r["version"]),
            s(&r["channel"]),
            s(&r["state"]),
            s(&r["percent"]),
            s(&r["on_release"]),
            s(&r["targeted"]),
            r["reached_pct"].as_f64().unwrap_or(0.0)
        );
        let reach: Vec<String> = list(&r["milestones"])
            .iter()
            .map(|m| {
                let p = m["percent"].as_f64().unwrap_or(0.0);
                match m["after_s"].as_u64() {
                    Some(secs) => format!("{p}% after {}", duration(secs)),
                    None => format!(
                        "{p}% not yet (at {:.1}%)",
                        r["ever_issued_pct"].as_f64().unwrap_or(0.0)
                    ),
                }
            })
            .collect();
        if !reach.is_empty() {
            println!("  since it began: {}", reach.join(", "));
        }
    }
}

/// `45 s`, `12 min`, `3.5 h`, `2.0 d`.
fn duration(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{:.1} h", secs as f64 / 3600.0),
        _ => format!("{:.1} d", secs as f64 / 86_400.0),
    }
}

pub fn simulation(v: &Value) {
    let rows = list(&v["releases"])
        .iter()
        .map(|r| vec![s(&r["release"]), s(&r["device_class"]), s(&r["devices"])])
        .collect();
    table(&["RELEASE", "CLASS", "DEVICES"], rows);
    let f = |x: &Value| x.as_f64().unwrap_or(0.0);
    let mib = |x: &Value| {
        x.as_f64().map_or_else(
            || "unknown".into(),
            |b| format!("{:.0} MiB", b / 1_048_576.0),
        )
    };
    println!(
        "{} devices, {} rounds in {:.1} s ({:.1} s registering); {} had an offline period",
        s(&v["devices"]),
        s(&v["rounds"]),
        f(&v["seconds"]),
        f(&v["register_seconds"]),
        s(&v["offline"])
    );
    println!(
        "telemetry: {} events ({} inferences), {} batches delivered late, {} resent batches answered duplicate",
        s(&v["events"]),
        s(&v["inferences"]),
        s(&v["late_batches"]),
        s(&v["duplicates_acknowledged"])
    );
    println!(
        "check-ins: {} at {:.0}/s, latency p50 {} ms, p99 {} ms; telemetry {:.0} events/s",
        s(&v["check_ins"]),
        f(&v["check_ins_per_s"]),
        num(&v["check_in_ms_p50"]),
        num(&v["check_in_ms_p99"]),
        f(&v["events_per_s"])
    );
    println!(
        "peak memory: simulator {}, fleet {} (now {})",
        mib(&v["peak_rss_bytes"]),
        mib(&v["fleet_memory"]["peak_rss_bytes"]),
        mib(&v["fleet_memory"]["rss_bytes"])
    );
}
