//! Real models' chat templates with tools, rendered by Outpost and by the
//! anchor side by side: llama.cpp's own renderer (the reference
//! `llama-server --jinja --chat-template-file`, `POST /apply-template`)
//! on the same conversation — system, user, an assistant tool call, its
//! result — and the same tools. The prompts must be equal byte for byte:
//! tools written by Python's `tojson` (separators, key order, no HTML
//! escaping), calls' arguments as objects, results in the template's
//! own turn. Templates from llama.cpp's collection (scripts/build-
//! reference.sh keeps them).

mod common;
#[path = "common/reference.rs"]
#[allow(dead_code)]
mod reference;

use outpost_engine::{ChatTemplate, LoadOptions, Message, MessageCall, Model, TemplateValue};
use reference::Server;
use serde_json::json;

fn templates_dir() -> std::path::PathBuf {
    let out = std::process::Command::new("bash")
        .arg(common::root().join("scripts/build-reference.sh"))
        .arg("--print-templates")
        .output()
        .expect("run scripts/build-reference.sh --print-templates");
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn tool_prompts_render_as_llama_cpp_renders_them() {
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Weather <forecast> & more, in °C",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city's \"name\""},
            "days": {"type": "integer", "minimum": 1}
        }, "required": ["city"]}
    }}]);
    let request = json!({
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What will the weather be in Paris? <b>&'"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "abcdefghi", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": 3}"}}]},
            {"role": "tool", "tool_call_id": "abcdefghi", "content": "Sunny, 24 degrees"}
        ],
        "tools": tools,
    });
    let mut assistant = Message::assistant("");
    assistant.tool_calls.push(MessageCall {
        id: "abcdefghi".into(),
        name: "get_weather".into(),
        arguments: TemplateValue::from_serialize(json!({"city": "Paris", "days": 3})),
    });
    let mut result = Message::new("tool", "Sunny, 24 degrees");
    result.tool_call_id = Some("abcdefghi".into());
    result.name = Some("get_weather".into());
    let messages = [
        Message::system("You are a helpful assistant."),
        Message::user("What will the weather be in Paris? <b>&'"),
        assistant,
        result,
    ];
    let tools: Vec<TemplateValue> = tools
        .as_array()
        .expect("tools")
        .iter()
        .map(TemplateValue::from_serialize)
        .collect();
    let model_path = common::model_path("smollm2-135m.gguf");
    let model = Model::load(&model_path, &LoadOptions::default()).expect("load SmolLM2");
    let dir = templates_dir();
    for file in [
        "Qwen-Qwen2.5-7B-Instruct.jinja",
        "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
        "mistralai-Mistral-Nemo-Instruct-2407.jinja",
        "meta-llama-Llama-3.2-3B-Instruct.jinja",
        "meta-llama-Llama-3.1-8B-Instruct.jinja",
        "Qwen-Qwen3-0.6B.jinja",
    ] {
        let path = dir.join(file);
        assert!(
            path.is_file(),
            "chat template {} missing: run scripts/build-reference.sh (tests never skip)",
            path.display()
        );
        let template = ChatTemplate::from_name_or_file(&path.display().to_string()).expect(file);
        let ours = model
            .render_chat_with_tools(&messages, &tools, Some(&template), true)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let server = Server::start(
            &model_path,
            &["--chat-template-file", &path.display().to_string()],
        );
        let theirs = server.post("/apply-template", request.clone());
        let theirs = theirs["prompt"].as_str().expect("prompt");
        assert_eq!(
            ours, theirs,
            "{file}: Outpost (left) and llama.cpp (right) differ"
        );
        assert!(ours.contains("Paris"), "{file}: {ours}");
    }
}

#[test]
fn families_are_told_apart_on_real_templates() {
    use outpost_protocol::tool_native::Family;
    let dir = templates_dir();
    for (file, family) in [
        ("Qwen-Qwen2.5-7B-Instruct.jinja", Some(Family::Hermes)),
        ("Qwen-Qwen3-0.6B.jinja", Some(Family::Hermes)),
        (
            "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
            Some(Family::Hermes),
        ),
        (
            "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja",
            Some(Family::Hermes),
        ),
        (
            "mistralai-Mistral-Nemo-Instruct-2407.jinja",
            Some(Family::Mistral),
        ),
        (
            "meta-llama-Llama-3.1-8B-Instruct.jinja",
            Some(Family::Llama3),
        ),
        (
            "meta-llama-Llama-3.2-3B-Instruct.jinja",
            Some(Family::Llama3),
        ),
        (
            "meta-llama-Llama-3.3-70B-Instruct.jinja",
            Some(Family::Llama3),
        ),
        // Other syntaxes get the generic format: XML inside <tool_call>,
        // [TOOL_CALLS]name[ARGS]{..}, Command R's actions, Functionary.
        ("Qwen3-Coder.jinja", None),
        ("GLM-4.6.jinja", None),
        ("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.jinja", None),
        ("Mistral-Small-3.2-24B-Instruct-2506.jinja", None),
        ("unsloth-mistral-Devstral-Small-2507.jinja", None),
        ("CohereForAI-c4ai-command-r-plus-tool_use.jinja", None),
        ("meetkai-functionary-medium-v3.1.jinja", None),
        ("HuggingFaceTB-SmolLM3-3B.jinja", None),
    ] {
        let source = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e} (run scripts/build-reference.sh)"));
        assert_eq!(Family::detect(&source), family, "{file}");
    }
}
