//! `cargo xtask bench-tools`: tool calling on `outpost serve` beside the
//! reference llama-server (`--jinja`: its own tool handling for a template
//! without tools), same model (SmolLM2), threads and prompts, in one run:
//! the share of answers under `tool_choice: "required"` whose calls are all
//! valid (a known function; arguments that parse and follow its schema:
//! `city` a string of at most 40 characters, `unit` one of the enum, no
//! other keys), and the time to the complete call (a non-streamed request,
//! start to answer), median and mean. Twice: under SmolLM2's own template
//! (which takes no tools: Outpost's generic format), and under Qwen 2.5's
//! template from llama.cpp's collection (Hermes `<tool_call>` blocks,
//! which both servers then render and parse in that family's syntax).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::serve_bench::{free_port, start_server};

const PROMPTS: [&str; 12] = [
    "What is the weather in Paris?",
    "Is it raining in London right now?",
    "What time is it in Tokyo?",
    "Tell me the temperature in New York in fahrenheit.",
    "I am flying to Berlin tomorrow. What's the weather like there?",
    "What's the local time in Sydney?",
    "How hot is it in Cairo, in celsius?",
    "Do I need an umbrella in Seattle today?",
    "What time is it in Buenos Aires and how is the weather?",
    "weather lisbon",
    "Can you check the time in Mumbai for me?",
    "Is it cold in Oslo?",
];

fn tools() -> Value {
    let city = json!({"type": "string", "maxLength": 40});
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": city, "unit": {"enum": ["celsius", "fahrenheit"]}},
                "required": ["city"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time", "description": "Current local time in a city",
            "parameters": {"type": "object", "properties": {"city": city}, "required": ["city"], "additionalProperties": false}}}
    ])
}

/// One call follows its function's schema.
fn valid_call(call: &Value) -> bool {
    let name = call["function"]["name"].as_str().unwrap_or("");
    let Some(args) = call["function"]["arguments"]
        .as_str()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
    else {
        return false;
    };
    let Some(obj) = args.as_object() else {
        return false;
    };
    let city_ok = obj["city"]
        .as_str()
        .is_some_and(|c| c.chars().count() <= 40);
    match name {
        "get_weather" => {
            city_ok
                && obj.keys().all(|k| k == "city" || k == "unit")
                && obj
                    .get("unit")
                    .is_none_or(|u| u == "celsius" || u == "fahrenheit")
        }
        "get_time" => city_ok && obj.len() == 1,
        _ => false,
    }
}

/// (valid answers, seconds per answer) over the prompts.
fn measure(base: &str, model: &str) -> Result<(usize, Vec<f64>)> {
    let ask = |prompt: &str| -> Result<(bool, f64)> {
        let body = json!({"model": model, "temperature": 0, "max_tokens": 160, "tool_choice": "required",
            "tools": tools(), "messages": [{"role": "user", "content": prompt}]});
        let t0 = Instant::now();
        let v: Value = ureq::post(&format!("{base}/v1/chat/completions"))
            .send_json(body)?
            .into_json()?;
        let secs = t0.elapsed().as_secs_f64();
        let calls = v["choices"][0]["message"]["tool_calls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok((!calls.is_empty() && calls.iter().all(valid_call), secs))
    };
    ask(PROMPTS[0]).context("warm-up request")?;
    let mut valid = 0;
    let mut times = Vec::new();
    for p in PROMPTS {
        let (ok, secs) = ask(p)?;
        valid += usize::from(ok);
        times.push(secs);
    }
    Ok((valid, times))
}

pub fn run(
    ref_dir: &Path,
    templates: &Path,
    outpost: &Path,
    model: &Path,
    threads: u32,
) -> Result<()> {
    let name = "smollm2-135m";
    let qwen = templates.join("Qwen-Qwen2.5-7B-Instruct.jinja");
    anyhow::ensure!(
        qwen.is_file(),
        "{} is missing: run scripts/build-reference.sh",
        qwen.display()
    );
    let configs: [(&str, Option<&Path>); 2] = [
        ("SmolLM2's own template (no tools in it)", None),
        ("Qwen 2.5's template (Hermes <tool_call>)", Some(&qwen)),
    ];
    let mut steps = crate::progress::Steps::new(4);
    let mut rows = Vec::new();
    for (label, template) in configs {
        for side in ["llama-server", "outpost"] {
            steps.next(&format!("{side}, {label}: {} tool requests", PROMPTS.len()));
            let port = free_port()?;
            let cmd = if side == "outpost" {
                let mut c = Command::new(outpost);
                c.arg("serve")
                    .arg(model)
                    .args(["--port", &port.to_string()]);
                if let Some(t) = template {
                    c.arg("--chat-template").arg(t);
                }
                c
            } else {
                let mut c = Command::new(ref_dir.join("llama-server"));
                c.arg("-m").arg(model).args([
                    "--port",
                    &port.to_string(),
                    "-c",
                    "4096",
                    "--jinja",
                    "--no-webui",
                    "--alias",
                    name,
                ]);
                if let Some(t) = template {
                    c.arg("--chat-template-file").arg(t);
                }
                c
            };
            let (_guard, base, served) = start_server(cmd, side, port, threads, model, name)?;
            rows.push((label, side, measure(&base, &served)?));
        }
    }
    drop(steps);
    println!(
        "tool_choice \"required\", {} prompts, two tools, SmolLM2, threads {threads}, temperature 0\n",
        PROMPTS.len()
    );
    println!("| template | server | valid answers | share | time to the call, median s | mean s |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for (label, side, (valid, mut times)) in rows {
        times.sort_by(f64::total_cmp);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!(
            "| {label} | {side} | {valid}/{} | {:.2} | {:.2} | {:.2} |",
            times.len(),
            valid as f64 / times.len() as f64,
            times[times.len() / 2],
            mean
        );
    }
    Ok(())
}
