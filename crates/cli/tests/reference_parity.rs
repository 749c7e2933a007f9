//! Outpost's engine against llama.cpp's own llama-server, built from the
//! llama.cpp that `llama-cpp-python` vendors (a different llama.cpp commit
//! than ours, so kernels may differ in the last bits).

mod common;

#[path = "common/reference.rs"]
mod reference;

use std::sync::Arc;

use common::model_path;
use outpost_engine::{CancelToken, GenerateRequest, LoadOptions, Message, Model, Prompt, SamplingParams};
use reference::{reference_commit, Server};
use serde_json::json;

const N_PREDICT: u32 = 32;
/// Below this top-2 logprob gap the two builds may legitimately disagree.
const TIE_NATS: f64 = 0.05;

const PROMPTS: &[&str] = &[
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
    "The three primary colors are",
    "Water boils at a temperature of",
    "List of planets in the solar system: Mercury,",
];

struct RefRun {
    ids: Vec<i64>,
    gaps: Vec<f64>,
}

fn reference_greedy(server: &Server, prompt: &str) -> RefRun {
    let v = server.post(
        "/completion",
        json!({
            "prompt": prompt, "n_predict": N_PREDICT, "temperature": 0.0, "n_probs": 2,
            "cache_prompt": false, "post_sampling_probs": false,
        }),
    );
    let probs = v["completion_probabilities"].as_array().expect("completion_probabilities");
    let mut run = RefRun { ids: Vec::new(), gaps: Vec::new() };
    for p in probs {
        run.ids.push(p["id"].as_i64().expect("id"));
        let top = p["top_logprobs"].as_array().expect("top_logprobs");
        let lp = |i: usize| top.get(i).and_then(|t| t["logprob"].as_f64()).unwrap_or(f64::NEG_INFINITY);
        run.gaps.push(lp(0) - lp(1));
    }
    run
}

fn parity(file: &str) {
    let path = model_path(file);
    let server = Server::start(&path, &[]);
    let model = Model::load(&path, &LoadOptions::default()).expect("load");
    let mut identical = 0;
    for prompt in PROMPTS {
        let r = reference_greedy(&server, prompt);
        let mut req = GenerateRequest::new(Prompt::Text(prompt.to_string()));
        req.sampling = SamplingParams::greedy();
        req.max_tokens = Some(N_PREDICT);
        req.n_ctx = Some(2048);
        req.threads = Some(1);
        let ours = model.generate(&req, &CancelToken::new(), |_| {}).expect("generate");
        let ours: Vec<i64> = ours.tokens.iter().map(|&t| i64::from(t)).collect();
        // Compare up to the first near-tie in the reference (that position
        // included: either token is then acceptable, so stop before it).
        let limit = r.gaps.iter().position(|&g| g < TIE_NATS).unwrap_or(r.ids.len());
        let limit = limit.min(ours.len()).min(r.ids.len());
        assert_eq!(
            ours[..limit],
            r.ids[..limit],
            "{file}: {prompt:?} diverges from llama.cpp before the first near-tie (at {limit})"
        );
        if ours == r.ids {
            identical += 1;
        }
        eprintln!(
            "{file}: {prompt:?}: equal over {limit} checked tokens, fully identical: {}",
            ours == r.ids
        );
        assert!(limit > 0 || r.gaps.first().is_some_and(|&g| g < TIE_NATS), "nothing compared");
    }
    eprintln!(
        "{file}: {identical}/{} prompts fully identical to llama.cpp {} over {N_PREDICT} tokens",
        PROMPTS.len(),
        reference_commit()
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
        vec![m("system", "You are a pirate."), m("user", "Where is the treasure?")],
        vec![m("user", "What is 2+2?"), m("assistant", "4"), m("user", "And times 3?")],
        vec![
            m("system", "Be brief."),
            m("user", "Name a fruit."),
            m("assistant", "Apple."),
            m("user", "Another?"),
        ],
        vec![m("user", "  spaces around  \n\nand blank lines\n")],
        vec![m("user", "Unicode: héllo wörld — 你好 🚀")],
        vec![m("user", "Literal tags: <|im_start|> and {{ braces }} and {% raw %}")],
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
    eprintln!("{} message lists rendered byte-equal to llama.cpp {}", lists.len(), reference_commit());
    // The same holds with an explicit template object.
    let t = Arc::new(outpost_engine::ChatTemplate::from_name_or_file("chatml").expect("builtin"));
    assert!(model.render_chat(&lists[0], Some(&t), true).is_ok());
}
