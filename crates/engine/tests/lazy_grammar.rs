//! Lazy grammars on a real model (SmolLM2): the text before the trigger
//! is the model's own, token for token, and from the trigger on the output
//! follows the grammar even where the model would write something else.
//! This is how tool calls in a model's own format are kept valid under
//! `tool_choice: "auto"`.

mod common;

use common::{smollm, THREADS};
use outpost_engine::{CancelToken, FinishReason, GenerateRequest, Prompt, SamplingParams};

/// Few-shot examples that make SmolLM2 write `<tool_call>` itself, with
/// `city` as the argument; the grammar below allows only `town`.
const PROMPT: &str = "Requests and the calls they become.\n\
Request: weather in Paris\nCall: <tool_call>{\"name\": \"weather\", \"arguments\": {\"city\": \"Paris\"}}</tool_call>\n\
Request: weather in Rome\nCall: <tool_call>{\"name\": \"weather\", \"arguments\": {\"city\": \"Rome\"}}</tool_call>\n\
Request: weather in Berlin\nCall:";

const GRAMMAR: &str = r#"root ::= "<tool_call>{\"name\": \"weather\", \"arguments\": {\"town\": " town "}}</tool_call>"
town ::= "\"Oslo\"" | "\"Lima\"""#;

fn request(grammar: Option<&str>, triggers: &[&str]) -> GenerateRequest {
    let mut r = GenerateRequest::new(Prompt::Text(PROMPT.into()));
    r.sampling = SamplingParams::greedy();
    r.max_tokens = Some(40);
    r.threads = THREADS;
    r.n_ctx = Some(512);
    r.stop = vec!["\n".into()];
    r.grammar = grammar.map(str::to_string);
    r.grammar_triggers = triggers.iter().map(|t| t.to_string()).collect();
    r
}

#[test]
fn a_lazy_grammar_holds_from_its_trigger_on() {
    let m = smollm();
    let free = m
        .generate(&request(None, &[]), &CancelToken::new(), |_| {})
        .expect("generate");
    // The model writes the opener by itself, and the argument it saw.
    let opener = free
        .text
        .find("<tool_call>")
        .unwrap_or_else(|| panic!("no opener in {:?}", free.text));
    assert!(free.text.contains("\"city\""), "{:?}", free.text);

    let lazy = m
        .generate(
            &request(Some(GRAMMAR), &["<tool_call>"]),
            &CancelToken::new(),
            |_| {},
        )
        .expect("generate");
    // Before the trigger: the same text as without a grammar.
    assert_eq!(
        lazy.text[..opener],
        free.text[..opener],
        "{:?} vs {:?}",
        lazy.text,
        free.text
    );
    // From it: the grammar's call, which the model alone did not write.
    let call = &lazy.text[opener..];
    assert!(
        call == "<tool_call>{\"name\": \"weather\", \"arguments\": {\"town\": \"Oslo\"}}</tool_call>"
            || call == "<tool_call>{\"name\": \"weather\", \"arguments\": {\"town\": \"Lima\"}}</tool_call>",
        "{call:?}"
    );
    assert_eq!(lazy.finish_reason, FinishReason::Stop);

    // A trigger that never appears leaves the answer the model's own.
    let idle = m
        .generate(
            &request(Some(GRAMMAR), &["<never_written>"]),
            &CancelToken::new(),
            |_| {},
        )
        .expect("generate");
    assert_eq!(idle.text, free.text);

    // A pattern that is not a regular expression is refused up front.
    let err = m
        .generate(
            &request(Some(GRAMMAR), &["(unclosed"]),
            &CancelToken::new(),
            |_| {},
        )
        .unwrap_err();
    assert!(err.to_string().contains("grammar"), "{err}");
}

#[test]
fn preserved_control_tokens_reach_the_text() {
    // `<|im_start|>` is a control token of SmolLM2: generated, it writes
    // nothing into the text, unless the request keeps it (as tool calling
    // keeps Mistral's `[TOOL_CALLS]`). After a finished ChatML turn,
    // held to the next turn's opener, the model writes it as that token.
    let m = smollm();
    let control = m.tokenize("<|im_start|>", false);
    assert_eq!(control.len(), 1, "one control token: {control:?}");
    assert!(m.token_bytes(control[0], false).is_empty());
    let ask = |preserved: &[&str]| {
        let mut r = request(None, &[]);
        r.prompt = Prompt::Tokens(m.tokenize("<|im_start|>user\nHi<|im_end|>\n", false));
        // The next turn's opener, as the model writes it.
        r.grammar = Some(r#"root ::= "<|im_start|>" "assistant""#.into());
        r.max_tokens = Some(3);
        r.stop = Vec::new();
        r.preserved_tokens = preserved.iter().map(|t| t.to_string()).collect();
        m.generate(&r, &CancelToken::new(), |_| {})
            .expect("generate")
    };
    let plain = ask(&[]);
    assert_eq!(
        plain.tokens.first(),
        Some(&control[0]),
        "{:?}",
        plain.tokens
    );
    assert!(!plain.text.contains("<|im_start|>"), "{:?}", plain.text);
    let kept = ask(&["<|im_start|>"]);
    assert_eq!(kept.tokens, plain.tokens);
    assert!(kept.text.starts_with("<|im_start|>"), "{:?}", kept.text);
    assert_eq!(&kept.text["<|im_start|>".len()..], plain.text);
}
