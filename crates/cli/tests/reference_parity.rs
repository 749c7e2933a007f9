//! Outpost's engine against llama.cpp's own llama-server, built from the
//! llama.cpp that `llama-cpp-python` vendors (a different llama.cpp commit
//! than ours, so kernels may differ in the last bits).

mod common;

#[path = "common/reference.rs"]
mod reference;

use std::sync::Arc;

use common::model_path;
use outpost_engine::{
    CancelToken, GenerateRequest, LoadOptions, Message, Model, Prompt, SamplingParams,
};
use reference::{reference_commit, Server};
use serde_json::json;

const N_PREDICT: u32 = 32;
/// The tie threshold: below this top-2 logprob gap two llama.cpp
/// builds may legitimately pick different tokens.
const TIE_NATS: f64 = 0.05;

const PROMPTS: &[&str] = &[
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
    "The three primary colors are",
    "Water boils at a temperature of",
    "List of planets in the solar system: Mercury,",
];

/// One greedy run of the reference: chosen ids and top-2 per position.
struct RefRun {
    ids: Vec<i64>,
    top: Vec<[(i64, f64); 2]>,
}

impl RefRun {
    fn gap(&self, i: usize) -> f64 {
        self.top[i][0].1 - self.top[i][1].1
    }
}

fn reference_greedy(server: &Server, prompt: &str) -> RefRun {
    let v = server.post(
        "/completion",
        json!({
            "prompt": prompt, "n_predict": N_PREDICT, "temperature": 0.0, "n_probs": 2,
            "cache_prompt": false, "post_sampling_probs": false,
        }),
    );
    let probs = v["completion_probabilities"]
        .as_array()
        .expect("completion_probabilities");
    let mut run = RefRun {
        ids: Vec::new(),
        top: Vec::new(),
    };
    for p in probs {
        run.ids.push(p["id"].as_i64().expect("id"));
        let top = p["top_logprobs"].as_array().expect("top_logprobs");
        let t = |i: usize| {
            top.get(i).map_or((-1, f64::NEG_INFINITY), |t| {
                (
                    t["id"].as_i64().unwrap_or(-1),
                    t["logprob"].as_f64().unwrap_or(f64::NEG_INFINITY),
                )
            })
        };
        run.top.push([t(0), t(1)]);
    }
    run
}

/// |Δ logprob| of the chosen token at every position where two greedy runs
/// still agree on all tokens so far.
fn logprob_deltas(a: &[(i64, f64)], b: &[(i64, f64)]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .take_while(|(x, y)| x.0 == y.0)
        .map(|(x, y)| (x.1 - y.1).abs())
        .collect()
}

fn chosen(r: &RefRun) -> Vec<(i64, f64)> {
    r.ids
        .iter()
        .zip(&r.top)
        .map(|(&id, t)| (id, t[0].1))
        .collect()
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// Greedy parity with llama.cpp. Two llama.cpp builds differ in their
/// kernels, so the tolerance is measured in the same run: the reference is
/// run twice, with flash attention on and off (same build, only the
/// attention kernel differs), and its disagreement with itself is the noise
/// floor. Outpost must then
/// 1. disagree with the reference no more than the reference disagrees with
///    itself (per-token logprob of the chosen token), and
/// 2. pick the same greedy tokens up to the first position where the
///    reference's top-2 gap is below twice that noise (at least 0.05 nats):
///    a gap that small can flip under a kernel change.
fn parity(file: &str) {
    let path = model_path(file);
    let model = Model::load(&path, &LoadOptions::default()).expect("load");
    let (refs, refs_other_kernel): (Vec<RefRun>, Vec<RefRun>) = {
        let server = Server::start(&path, &["-fa", "on"]);
        let a = PROMPTS
            .iter()
            .map(|p| reference_greedy(&server, p))
            .collect();
        drop(server);
        let server = Server::start(&path, &["-fa", "off"]);
        let b = PROMPTS
            .iter()
            .map(|p| reference_greedy(&server, p))
            .collect();
        (a, b)
    };
    let noise = refs
        .iter()
        .zip(&refs_other_kernel)
        .flat_map(|(a, b)| logprob_deltas(&chosen(a), &chosen(b)))
        .collect::<Vec<_>>();
    let tie = TIE_NATS.max(2.0 * max(&noise));
    let mut ours_deltas = Vec::new();
    let (mut identical, mut within_005) = (0, 0);
    for (prompt, r) in PROMPTS.iter().zip(&refs) {
        let mut req = GenerateRequest::new(Prompt::Text(prompt.to_string()));
        req.sampling = SamplingParams::greedy();
        req.max_tokens = Some(N_PREDICT);
        req.n_ctx = Some(2048);
        req.threads = Some(1);
        req.top_logprobs = Some(1);
        let mut lps = Vec::new();
        model
            .generate(&req, &CancelToken::new(), |p| {
                if let Some(lp) = p.logprob {
                    lps.push((i64::from(p.token), f64::from(lp)));
                }
            })
            .expect("generate");
        let ours: Vec<i64> = lps.iter().map(|x| x.0).collect();
        ours_deltas.extend(logprob_deltas(&lps, &chosen(r)));
        let n = ours.len().min(r.ids.len());
        let diverge = (0..n).find(|&i| ours[i] != r.ids[i]);
        let first_tie = |t: f64| {
            (0..r.ids.len())
                .find(|&i| r.gap(i) < t)
                .unwrap_or(r.ids.len())
        };
        let limit = first_tie(tie).min(n);
        if diverge.is_none_or(|d| d >= first_tie(TIE_NATS).min(n)) {
            within_005 += 1;
        }
        if ours == r.ids {
            identical += 1;
        }
        eprintln!(
            "{file}: {prompt:?}: first difference at {diverge:?} (reference gap there {:?}), checked {limit} tokens",
            diverge.map(|d| (r.gap(d) * 1000.0).round() / 1000.0)
        );
        assert_eq!(
            ours[..limit],
            r.ids[..limit],
            "{file}: {prompt:?} diverges from llama.cpp where the reference's top-2 gap is above {tie:.3} nats"
        );
    }
    eprintln!(
        "{file}: outpost (llama.cpp {ours}) vs llama.cpp {commit}: logprob |delta| max {:.4} nats over {} tokens; reference vs itself \
         (flash attention on/off): max {:.4} over {}; tie threshold {tie:.3}",
        max(&ours_deltas),
        ours_deltas.len(),
        max(&noise),
        noise.len(),
        commit = reference_commit(),
        ours = outpost_engine::build_info().llama_cpp_commit,
    );
    eprintln!(
        "{file}: {identical}/{n} prompts fully identical over {N_PREDICT} tokens; \
         {within_005}/{n} equal up to the first 0.05-nat near-tie",
        n = PROMPTS.len()
    );
    assert!(
        ours_deltas.len() >= PROMPTS.len() * 4,
        "too few tokens compared: {}",
        ours_deltas.len()
    );
    assert!(
        max(&ours_deltas) <= max(&noise) + 0.01,
        "{file}: Outpost's logprobs differ from llama.cpp's by up to {:.4} nats, more than llama.cpp differs from itself ({:.4})",
        max(&ours_deltas),
        max(&noise)
    );
}

#[test]
fn greedy_tokens_match_llama_cpp_on_smollm2() {
    parity("smollm2-135m.gguf");
}

#[test]
fn greedy_tokens_match_llama_cpp_on_gemma3() {
    parity("gemma3-270m.gguf");
}

#[test]
fn chat_templates_render_byte_equal_to_llama_server() {
    let path = model_path("smollm2-135m.gguf");
    let server = Server::start(&path, &[]);
    let model = Model::load(&path, &LoadOptions::default()).expect("load");
    let m = |r: &str, c: &str| Message::new(r, c);
    let lists: Vec<Vec<Message>> = vec![
        vec![m("user", "Hi")],
        vec![
            m("system", "You are a pirate."),
            m("user", "Where is the treasure?"),
        ],
        vec![
            m("user", "What is 2+2?"),
            m("assistant", "4"),
            m("user", "And times 3?"),
        ],
        vec![
            m("system", "Be brief."),
            m("user", "Name a fruit."),
            m("assistant", "Apple."),
            m("user", "Another?"),
        ],
        vec![m("user", "  spaces around  \n\nand blank lines\n")],
        vec![m("user", "Unicode: héllo wörld — 你好 🚀")],
        vec![m(
            "user",
            "Literal tags: <|im_start|> and {{ braces }} and {% raw %}",
        )],
    ];
    for msgs in &lists {
        let body = json!({
            "messages": msgs.iter().map(|x| json!({"role": x.role, "content": x.content})).collect::<Vec<_>>()
        });
        let theirs = server.post("/apply-template", body)["prompt"]
            .as_str()
            .expect("prompt")
            .to_string();
        let ours = model.render_chat(msgs, None, true).expect("render");
        assert_eq!(ours, theirs, "messages: {msgs:?}");
    }
    eprintln!(
        "{} message lists rendered byte-equal to llama.cpp {}",
        lists.len(),
        reference_commit()
    );
    // The same holds with an explicit template object.
    let t = Arc::new(outpost_engine::ChatTemplate::from_name_or_file("chatml").expect("builtin"));
    assert!(model.render_chat(&lists[0], Some(&t), true).is_ok());
}
