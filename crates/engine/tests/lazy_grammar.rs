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
