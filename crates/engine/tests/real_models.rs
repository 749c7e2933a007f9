//! End-to-end behaviour of the engine on the two real models.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{gemma, smollm, THREADS};
use outpost_engine::{
    CancelToken, EngineError, FinishReason, GenerateRequest, Message, Prompt, SamplingParams,
};

fn greedy_raw(text: &str, max_tokens: u32) -> GenerateRequest {
    let mut r = GenerateRequest::new(Prompt::Text(text.into()));
    r.sampling = SamplingParams::greedy();
    r.max_tokens = Some(max_tokens);
    r.threads = THREADS;
    r.n_ctx = Some(512);
    r
}

#[test]
fn smollm_knows_the_capital_of_france() {
    let m = smollm();
    let done = m
        .generate(
            &greedy_raw("The capital of France is", 8),
            &CancelToken::new(),
            |_| {},
        )
        .expect("generate");
    assert!(done.text.starts_with(" Paris."), "got {:?}", done.text);
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert_eq!(done.tokens.len(), 8);
}

#[test]
fn streamed_pieces_add_up_to_the_text() {
    let m = gemma();
    let mut streamed = String::new();
    let mut ids = Vec::new();
    let done = m
        .generate(
            &greedy_raw("Once upon a time", 24),
            &CancelToken::new(),
            |p| {
                streamed.push_str(&p.text);
                if p.token >= 0 {
                    ids.push(p.token);
                }
            },
        )
        .expect("generate");
    assert_eq!(streamed, done.text);
    assert_eq!(ids, done.tokens);
    assert_eq!(m.detokenize(&done.tokens), done.text);
    assert!(!done.text.trim().is_empty());
}

#[test]
fn same_seed_same_text_other_seed_other_text() {
    let m = smollm();
    let run = |seed| {
        let mut r = GenerateRequest::new(Prompt::Chat {
            messages: vec![Message::user("Tell me a short story about a robot.")],
            template: None,
            tools: Vec::new(),
        });
        r.sampling = SamplingParams {
            temperature: 1.0,
            seed: Some(seed),
            ..SamplingParams::default()
        };
        r.max_tokens = Some(40);
        r.threads = THREADS;
        r.n_ctx = Some(512);
        m.generate(&r, &CancelToken::new(), |_| {})
            .expect("generate")
    };
    let a = run(42);
    let b = run(42);
    assert_eq!(a.text, b.text);
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.seed, 42);
    // Sampling is really random: of several other seeds at least one differs.
    assert!(
        [1, 2, 3].iter().any(|&s| run(s).tokens != a.tokens),
        "every seed produced the same text; sampling ignores the seed"
    );
}

#[test]
fn prompt_longer_than_context_is_an_error_naming_both_numbers() {
    let m = smollm();
    let long = "word ".repeat(200);
    let mut r = greedy_raw(&long, 4);
    r.n_ctx = Some(64);
    let n_prompt = m.tokenize(&long, true).len();
    let err = m.generate(&r, &CancelToken::new(), |_| {}).unwrap_err();
    match &err {
        EngineError::ContextOverflow {
            prompt_tokens,
            n_ctx,
            ..
        } => {
            assert_eq!(*prompt_tokens, n_prompt);
            assert_eq!(*n_ctx, 64);
        }
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&n_prompt.to_string()) && msg.contains("64"),
        "{msg}"
    );
}

#[test]
fn a_full_context_stops_generation_instead_of_shifting() {
    let m = gemma();
    let mut r = greedy_raw("1, 2, 3, 4, 5, 6,", 1000);
    r.n_ctx = Some(32);
    let n_prompt = m.tokenize("1, 2, 3, 4, 5, 6,", true).len();
    let done = m
        .generate(&r, &CancelToken::new(), |_| {})
        .expect("generate");
    assert_eq!(
        done.finish_reason,
        FinishReason::ContextFull,
        "text: {:?}",
        done.text
    );
    assert_eq!(done.prompt_tokens + done.tokens.len(), 32);
    assert_eq!(done.prompt_tokens, n_prompt);
    assert_eq!(done.finish_reason.as_str(), "length");
}

#[test]
fn cancellation_from_another_thread_stops_generation() {
    let m = smollm();
    let cancel = CancelToken::new();
    let (tx, rx) = mpsc::channel::<()>();
    let canceller = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            rx.recv_timeout(Duration::from_secs(60))
                .expect("a first piece");
            cancel.cancel();
        })
    };
    let mut r = greedy_raw("Write a very long essay about the history of bread.", 400);
    r.prompt = Prompt::Chat {
        messages: vec![Message::user(
            "Write a very long essay about the history of bread.",
        )],
        template: None,
        tools: Vec::new(),
    };
    let mut sent = false;
    let done = m
        .generate(&r, &cancel, |_| {
            if !sent {
                tx.send(()).expect("send");
                sent = true;
            }
        })
        .expect("generate");
    canceller.join().expect("join");
    assert_eq!(done.finish_reason, FinishReason::Cancelled);
    assert!(
        done.tokens.len() < 400,
        "generated {} tokens",
        done.tokens.len()
    );
    assert!(!done.tokens.is_empty());
}

#[test]
fn stop_sequence_ends_the_text_before_it() {
    let m = gemma();
    let free = m
        .generate(
            &greedy_raw("The days of the week are Monday,", 24),
            &CancelToken::new(),
            |_| {},
        )
        .expect("generate");
    // Stop at the second word of the free-running text.
    let words: Vec<&str> = free.text.split_whitespace().collect();
    assert!(words.len() > 3, "too little text: {:?}", free.text);
    let stop = words[2].to_string();
    let cut = free.text.find(&stop).expect("stop is in the text");
    let mut r = greedy_raw("The days of the week are Monday,", 24);
    r.stop = vec![stop.clone()];
    let mut streamed = String::new();
    let done = m
        .generate(&r, &CancelToken::new(), |p| streamed.push_str(&p.text))
        .expect("generate");
    assert_eq!(done.finish_reason, FinishReason::Stop);
    assert_eq!(done.text, free.text[..cut], "stop {stop:?}");
    assert_eq!(streamed, done.text, "held-back text must never be streamed");
}

#[test]
fn chat_prompt_uses_the_gguf_template_with_its_default_system_prompt() {
    let m = smollm();
    let rendered = m
        .render_chat(&[Message::user("Hi")], None, true)
        .expect("render");
    // SmolLM2's own Jinja template adds a default system message that
    // llama.cpp's built-in template matching drops.
    assert!(rendered.starts_with("<|im_start|>system\n"), "{rendered:?}");
    assert!(rendered.contains("SmolLM"), "{rendered:?}");
    assert!(
        rendered.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        "{rendered:?}"
    );
    // Special-token text becomes the special token.
    let tokens = m.tokenize_chat_prompt(&rendered);
    let im_start = m.tokenize("<|im_start|>", false);
    assert_eq!(im_start.len(), 1);
    assert_eq!(tokens[0], im_start[0]);
}

#[test]
fn a_chat_answer_ends_at_end_of_turn() {
    let m = smollm();
    let mut r = GenerateRequest::new(Prompt::Chat {
        messages: vec![Message::user("What is 2+2? Answer with just the number.")],
        template: None,
        tools: Vec::new(),
    });
    r.sampling = SamplingParams::greedy();
    r.max_tokens = Some(64);
    r.threads = THREADS;
    let done = m
        .generate(&r, &CancelToken::new(), |_| {})
        .expect("generate");
    assert_eq!(done.finish_reason, FinishReason::Stop, "{:?}", done.text);
    assert!(done.text.contains('4'), "{:?}", done.text);
    assert!(!done.text.contains("<|im_end|>"));
}

#[test]
fn base_model_without_template_refuses_chat_and_names_the_way_out() {
    let m = gemma();
    assert!(m.chat_template().is_none());
    let err = m
        .render_chat(&[Message::user("Hi")], None, true)
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EngineError::NoChatTemplate { .. }), "{err:?}");
    assert!(
        msg.contains("--raw") && msg.contains("--chat-template"),
        "{msg}"
    );
    // With an explicit template it works.
    let t = outpost_engine::ChatTemplate::from_name_or_file("gemma").expect("builtin");
    let text = m
        .render_chat(&[Message::user("Hi")], Some(&t), true)
        .expect("render");
    assert_eq!(
        text,
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    );
    // and the template's <bos> is not doubled by the tokenizer.
    let tokens = m.tokenize_chat_prompt(&text);
    let bos = m.info().bos.as_ref().expect("bos").id;
    assert_eq!(tokens[0], bos);
    assert_ne!(tokens[1], bos);
}

#[test]
fn model_info_describes_both_models() {
    let s = smollm();
    let i = s.info();
    assert_eq!(i.architecture, "llama");
    assert!(
        (130_000_000..140_000_000).contains(&i.n_params),
        "{}",
        i.n_params
    );
    assert_eq!(i.n_vocab, 49152);
    assert_eq!(i.n_ctx_train, 8192);
    assert!(i.chat_template.is_some());
    assert!(
        i.type_mix.iter().any(|(t, _, _)| t == "q4_1"),
        "{:?}",
        i.type_mix
    );
    let total: usize = i.type_mix.iter().map(|m| m.1).sum();
    assert!(total > 100);

    let g = gemma();
    let i = g.info();
    assert_eq!(i.architecture, "gemma3");
    assert!(
        (250_000_000..300_000_000).contains(&i.n_params),
        "{}",
        i.n_params
    );
    assert!(i.sliding_window.is_some());
    assert!(i.add_bos);
    assert_eq!(i.bos.as_ref().map(|b| b.text.as_str()), Some("<bos>"));
    assert!(i.chat_template.is_none());
    assert!(
        i.type_mix.iter().any(|(t, _, _)| t == "q4_K"),
        "{:?}",
        i.type_mix
    );
    let shown = i.to_string();
    assert!(
        shown.contains("gemma3") && shown.contains("q4_K"),
        "{shown}"
    );
}

#[test]
fn logprobs_are_reported_for_chosen_and_top_tokens() {
    let m = smollm();
    let mut r = greedy_raw("The capital of France is", 4);
    r.top_logprobs = Some(3);
    let mut pieces = Vec::new();
    m.generate(&r, &CancelToken::new(), |p| pieces.push(p.clone()))
        .expect("generate");
    let pieces: Vec<_> = pieces.into_iter().filter(|p| p.token >= 0).collect();
    assert_eq!(pieces.len(), 4);
    for p in &pieces {
        assert_eq!(p.top.len(), 3);
        // Greedy picks the most likely token.
        assert_eq!(p.top[0].token, p.token);
        assert_eq!(p.logprob, Some(p.top[0].logprob));
        assert!(p.top[0].logprob <= 0.0 && p.top[0].logprob >= p.top[1].logprob);
    }
}

#[test]
fn bad_parameters_are_refused_with_the_value() {
    let m = smollm();
    let mut r = greedy_raw("x", 4);
    r.n_ctx = Some(1_000_000);
    let msg = m
        .generate(&r, &CancelToken::new(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(msg.contains("1000000"), "{msg}");
    let mut r = greedy_raw("x", 4);
    r.max_tokens = Some(0);
    assert!(m.generate(&r, &CancelToken::new(), |_| {}).is_err());
    let mut r = greedy_raw("x", 4);
    r.sampling.min_p = 2.0;
    let msg = m
        .generate(&r, &CancelToken::new(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(msg.contains("min_p = 2"), "{msg}");
    let r = GenerateRequest::new(Prompt::Tokens(vec![1, 999_999]));
    let msg = m
        .generate(&r, &CancelToken::new(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(msg.contains("999999"), "{msg}");
}

#[test]
fn a_json_schema_grammar_makes_output_parse_and_follow_the_schema() {
    let m = smollm();
    let schema = r#"{"type":"object","properties":{"city":{"type":"string"},"year":{"type":"integer"}},"required":["city","year"],"additionalProperties":false}"#;
    let mut r = GenerateRequest::new(Prompt::Chat {
        messages: vec![Message::user(
            "When was the Eiffel Tower built, and where? Answer in JSON.",
        )],
        template: None,
        tools: Vec::new(),
    });
    r.grammar = Some(outpost_engine::json_schema_grammar(schema).expect("grammar"));
    r.max_tokens = Some(120);
    r.threads = THREADS;
    for seed in [1, 2, 3] {
        r.sampling = SamplingParams {
            seed: Some(seed),
            ..SamplingParams::default()
        };
        let done = m
            .generate(&r, &CancelToken::new(), |_| {})
            .expect("generate");
        assert_eq!(done.finish_reason, FinishReason::Stop, "{:?}", done.text);
        let v: serde_json::Value =
            serde_json::from_str(&done.text).unwrap_or_else(|e| panic!("{e}: {:?}", done.text));
        assert!(v["city"].is_string() && v["year"].is_i64(), "{v}");
        assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{v}");
    }
    // A grammar that does not parse is refused before anything runs.
    r.grammar = Some("root ::= (".into());
    let err = m.generate(&r, &CancelToken::new(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("grammar"), "{err}");
}
