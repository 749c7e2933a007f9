//! One generation, as the C ABI (`model.rs`) and the UniFFI API
//! (`api.rs`) both run it: settings with zero meaning default, a flag of
//! its own (set by the caller's cancel handle or by the piece callback
//! asking to stop), pieces handed on as they become final.

use outpost_engine::{CancelToken, FinishReason, GenerateRequest, Model, Prompt, SamplingParams};

/// How to generate; 0 in a number means its default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Settings {
    pub max_tokens: u32,
    pub temperature: f32,
    pub greedy: bool,
    pub threads: u32,
    pub n_ctx: u32,
    pub seed: u32,
}

/// The chat prompt for `(role, content)` turns, rendered with the model's
/// own template.
pub(crate) fn chat_prompt(turns: Vec<(String, String)>) -> Result<Prompt, String> {
    if turns.is_empty() {
        return Err("is empty: give at least one message".into());
    }
    Ok(Prompt::Chat {
        messages: turns
            .into_iter()
            .map(|(role, content)| outpost_engine::Message::new(role, content))
            .collect(),
        template: None,
        tools: Vec::new(),
    })
}

/// One generation: the text and whether it was cancelled (by `outside`, or
/// by `on_piece` returning false).
pub(crate) fn generate(
    model: &Model,
    prompt: Prompt,
    o: &Settings,
    outside: Option<&CancelToken>,
    mut on_piece: impl FnMut(&str) -> bool,
) -> Result<(String, bool), String> {
    // This generation's own flag: set by the caller's handle or by the
    // callback asking to stop (which must not set the caller's handle).
    let token = CancelToken::new();
    if outside.is_some_and(CancelToken::is_cancelled) {
        token.cancel();
    }
    let mut r = GenerateRequest::new(prompt);
    r.max_tokens = Some(if o.max_tokens == 0 { 256 } else { o.max_tokens });
    r.sampling = if o.greedy {
        SamplingParams::greedy()
    } else {
        SamplingParams {
            temperature: o.temperature,
            seed: (o.seed != 0).then_some(o.seed),
            ..SamplingParams::default()
        }
    };
    r.threads = (o.threads != 0).then_some(o.threads);
    r.n_ctx = Some(if o.n_ctx == 0 {
        model.info().n_ctx_train.min(4096)
    } else {
        o.n_ctx
    });
    let mut stopped = false;
    let done = model
        .generate(&r, &token, |p| {
            if outside.is_some_and(CancelToken::is_cancelled) {
                token.cancel();
                return;
            }
            if p.text.is_empty() || stopped {
                return;
            }
            if !on_piece(&p.text) {
                stopped = true;
                token.cancel();
            }
        })
        .map_err(|e| e.to_string())?;
    Ok((done.text, done.finish_reason == FinishReason::Cancelled))
}
