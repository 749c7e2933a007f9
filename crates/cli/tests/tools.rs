//! Tool calling end to end: `outpost serve` with SmolLM2 and Gemma 3 on a
//! real socket, driven by the official `openai` and `ollama` Python
//! clients (crates/cli/tests/tools_client.py): calls under `required`, a
//! named function, streamed call deltas, the whole loop (call → tool result
//! → answer), 400s that name the field, and a property run over random
//! parameter schemas whose every call is checked by the `jsonschema`
//! package; and LangChain (crates/cli/tests/langchain_client.py) running
//! a two-tool task unchanged.

mod common;

use common::run_python_client;
use common::server::start_models;

#[test]
fn tool_calls_through_the_official_clients_are_valid_by_construction() {
    let server = start_models(
        &["smollm2-135m", "gemma3-270m"],
        &["--chat-template", "gemma3-270m=gemma"],
    );
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = run_python_client(
        "tools_client.py",
        "openai ollama",
        &[("OUTPOST_BASE_URL", &base)],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap_or(""))
        .expect("the script's summary line");
    assert!(v["checks"].as_u64() >= Some(100), "{out}");
    assert!(v["property_cases"].as_u64() >= Some(16), "{out}");
}

#[test]
fn langchain_runs_a_two_tool_task_unchanged() {
    let server = start_models(&["smollm2-135m"], &[]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = run_python_client(
        "langchain_client.py",
        "langchain-openai",
        &[("OUTPOST_BASE_URL", &base)],
    );
    assert!(
        out.contains("\"multiply\"") && out.contains("\"add\""),
        "{out}"
    );
}
