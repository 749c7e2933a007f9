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

/// llama.cpp's collection of real models' chat templates (kept by
/// scripts/build-reference.sh); panics with the fix when absent.
fn reference_template(file: &str) -> std::path::PathBuf {
    let out = std::process::Command::new("bash")
        .arg(common::root().join("scripts/build-reference.sh"))
        .arg("--print-templates")
        .output()
        .expect("run scripts/build-reference.sh --print-templates");
    let dir = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let path = dir.join(file);
    assert!(
        path.is_file(),
        "chat template {} missing: run scripts/build-reference.sh (tests never skip)",
        path.display()
    );
    path
}

#[test]
fn models_answer_in_their_own_templates_tool_format() {
    // Real templates on the project's models: Qwen 2.5's (Hermes
    // `<tool_call>` blocks; SmolLM2 speaks the same ChatML), Mistral
    // Nemo's (`[TOOL_CALLS]`, 9-character ids) and Llama 3.2's (a JSON
    // call with "parameters"). Each model is served under its own name
    // through a link, so that each gets its own template.
    let dir = tempfile_dir("native-tools");
    let link = |name: &str, model: &str| {
        let to = dir.join(format!("{name}.gguf"));
        let _ = std::fs::remove_file(&to);
        std::os::unix::fs::symlink(common::model_path(model), &to).expect("link");
        to.display().to_string()
    };
    let hermes = link("smollm2-hermes", "smollm2-135m.gguf");
    let mistral = link("smollm2-mistral", "smollm2-135m.gguf");
    let llama = link("gemma3-llama3", "gemma3-270m.gguf");
    let templates = [
        format!(
            "smollm2-hermes={}",
            reference_template("Qwen-Qwen2.5-7B-Instruct.jinja").display()
        ),
        format!(
            "smollm2-mistral={}",
            reference_template("mistralai-Mistral-Nemo-Instruct-2407.jinja").display()
        ),
        format!(
            "gemma3-llama3={}",
            reference_template("meta-llama-Llama-3.2-3B-Instruct.jinja").display()
        ),
    ];
    let server = start_models(
        &[&hermes, &mistral, &llama],
        &[
            "--chat-template",
            &templates[0],
            "--chat-template",
            &templates[1],
            "--chat-template",
            &templates[2],
        ],
    );
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = run_python_client(
        "native_tools_client.py",
        "openai ollama",
        &[
            ("OUTPOST_BASE_URL", &base),
            (
                "OUTPOST_NATIVE_MODELS",
                "smollm2-hermes=hermes,smollm2-mistral=mistral,gemma3-llama3=llama3",
            ),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap_or(""))
        .expect("the script's summary line");
    assert!(v["checks"].as_u64() >= Some(80), "{out}");
    assert!(v["property_cases"].as_u64() >= Some(12), "{out}");
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}
