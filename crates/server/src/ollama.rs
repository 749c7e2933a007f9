//! The Ollama-compatible endpoints (`/api/chat`, `/api/generate`,
//! `/api/tags`, `/api/show`, `/api/ps`, `/api/version`), so that Ollama
//! clients work unchanged. Streams are newline-delimited JSON (Ollama
//! streams unless `"stream": false`); errors are `{"error": "..."}`.
//! Sampling defaults are Ollama's (temperature 0.8, top-k 40, top-p 0.9,
//! repeat penalty 1.1 over 64 tokens). `/api/chat` takes Outpost's
//! `outpost.retrieve` extension as `/v1/chat/completions` does.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use outpost_engine::{Completion, Event, FinishReason, GenerateRequest, Message, Prompt};
use outpost_index::ground::AnswerStream;
#[allow(unused_imports)] // named in the OpenAPI attributes only
use outpost_protocol::ollama::ErrorResponse;
use outpost_protocol::ollama::{
    rfc3339, ChatMessage, ChatRequest, ChatResponse, GenerateRequest as OllamaGenerate,
    GenerateResponse, KeepAlive, ListedModel, Options, PsResponse, RunningModel, ShowRequest,
    ShowResponse, TagsResponse, Timings, ToolCall, ToolCallFunction, VersionResponse,
};
use outpost_protocol::retrieval::{OutpostAnswer, Retrieve};
use outpost_protocol::tool_native::Family;
use outpost_protocol::tool_stream::StreamEvent;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::error::ApiError;
use crate::flow::{forward, json, run_to_end, Framing};
use crate::openai::{parse, Body};
use crate::registry::{Lease, ModelSpec};
use crate::retrieve::Grounding;
use crate::served::ServedModel;
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

/// NDJSON: errors as `{"error": ...}`, no end marker.
const NDJSON: Framing = Framing {
    error: |e| {
        json(&outpost_protocol::ollama::ErrorResponse {
            error: e.body.error.message.clone(),
        })
    },
    end: None,
};

fn ollama(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(ApiError::into_ollama)
}

fn created_at() -> String {
    rfc3339(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

fn done_reason(r: FinishReason) -> String {
    match r {
        FinishReason::Stop => "stop",
        FinishReason::Length | FinishReason::ContextFull => "length",
        FinishReason::Cancelled => "cancelled",
    }
    .into()
}

fn timings(done: &Completion, started: Instant, load: Duration) -> Timings {
    let ns = |ms: f64| (ms * 1e6) as u64;
    Timings {
        total_duration: started.elapsed().as_nanos() as u64,
        load_duration: load.as_nanos() as u64,
        prompt_eval_count: done.prompt_tokens as u64,
        prompt_eval_duration: ns(done.prompt_ms),
        eval_count: done.tokens.len() as u64,
        eval_duration: ns(done.generate_ms),
    }
}

/// Options onto an engine request, with Ollama's defaults.
fn apply_options(
    g: &mut GenerateRequest,
    options: Option<&Options>,
    spec: &ModelSpec,
) -> Result<(), ApiError> {
    let o = options.cloned().unwrap_or_default();
    if let Some(n) = o.num_ctx {
        if n > i64::from(spec.ctx_per_slot) {
            return Err(ApiError::bad_request(
                Some("options.num_ctx"),
                "invalid_value",
                format!(
                    "{n} is more than the {} tokens of context each sequence of {} has here; restart the server with a larger --ctx-size, or ask for less",
                    spec.ctx_per_slot, spec.name
                ),
            ));
        }
    }
    let clamp = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    g.sampling.temperature = o.temperature.unwrap_or(0.8);
    g.sampling.top_k = o.top_k.map_or(40, clamp);
    g.sampling.top_p = o.top_p.unwrap_or(0.9);
    g.sampling.min_p = o.min_p.unwrap_or(0.0);
    g.sampling.repeat_penalty = o.repeat_penalty.unwrap_or(1.1);
    g.sampling.repeat_last_n = match o.repeat_last_n {
        Some(-1) => clamp(i64::from(spec.ctx_per_slot)),
        Some(n) => clamp(n),
        None => 64,
    };
    g.sampling.seed = o.seed.and_then(|s| u32::try_from(s).ok());
    g.max_tokens = o.max_tokens();
    g.stop = o.stop.unwrap_or_default();
    Ok(())
}

fn grammar(schema: Option<String>) -> Result<Option<String>, ApiError> {
    schema
        .map(|s| {
            outpost_engine::json_schema_grammar(&s).map_err(|e| {
                ApiError::bad_request(
                    Some("format"),
                    "invalid_value",
                    format!("the JSON schema cannot be enforced: {e}"),
                )
            })
        })
        .transpose()
}

/// No prompt: load the model (or, with `keep_alive` 0, unload it).
async fn load_or_unload(
    state: &Arc<AppState>,
    model: &str,
    keep_alive: Option<KeepAlive>,
) -> Result<&'static str, ApiError> {
    if keep_alive == Some(KeepAlive::For(Duration::ZERO)) {
        state.registry.unload_now(model).await?;
        Ok("unload")
    } else {
        drop(state.registry.acquire(model, keep_alive).await?);
        Ok("load")
    }
}

/// One line of an answer, before it takes its endpoint's shape.
#[derive(Default)]
struct Reply {
    text: String,
    calls: Vec<ToolCall>,
    /// Set on the last line.
    done_reason: Option<String>,
    timings: Option<Timings>,
    /// A grounded answer's citations, on the last line.
    outpost: Option<OutpostAnswer>,
}

impl Reply {
    fn text(text: String) -> Reply {
        Reply {
            text,
            ..Reply::default()
        }
    }
}

/// How the answer's raw text is read back.
enum Shape {
    Text,
    /// Calls or text (`tools`), in the generic format or a family's.
    Tools(Option<Family>),
    /// Sources and an answer (`outpost.retrieve`).
    Grounded(Grounding),
}

/// Runs `g` under `lease` and answers with `line(reply)` objects: one when
/// not streaming, NDJSON lines when streaming.
async fn answer<T: serde::Serialize + Send + 'static>(
    state: Arc<AppState>,
    started: Instant,
    lease: Lease,
    g: GenerateRequest,
    (stream, shape): (bool, Shape),
    line: impl Fn(Reply) -> T + Send + 'static,
) -> Result<Response, ApiError> {
    let load = lease.load_duration;
    let handle = lease.submit(g)?;
    if !stream {
        let (done, _) = run_to_end(state, started, lease, handle).await?;
        let mut r = Reply {
            done_reason: Some(done_reason(done.finish_reason)),
            timings: Some(timings(&done, started, load)),
            ..Reply::default()
        };
        match &shape {
            Shape::Text => r.text = done.text.clone(),
            Shape::Tools(family) => {
                let (content, calls) = crate::tools::finished(&done.text, *family);
                r.text = content.unwrap_or_default();
                r.calls = ollama_calls(calls);
            }
            Shape::Grounded(g) => {
                let (text, answer) = g.finish(&done.text);
                r.text = text;
                r.outpost = Some(answer);
            }
        }
        return Ok(Json(line(r)).into_response());
    }
    let mut reader = match &shape {
        Shape::Tools(family) => Some(crate::tools::Reader::new(*family)),
        _ => None,
    };
    let mut grounded = match shape {
        Shape::Grounded(g) => Some((AnswerStream::default(), g)),
        _ => None,
    };
    let lines =
        ReceiverStream::new(forward(
            state,
            started,
            lease,
            handle,
            NDJSON,
            move |ev| match ev {
                Event::Piece(p) if p.text.is_empty() => Vec::new(),
                // Text of a tool answer streams as it comes; calls come
                // whole, in one line before the last (as Ollama sends them).
                Event::Piece(p) if reader.is_some() => reader
                    .as_mut()
                    .map(|r| r.feed(&p.text))
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|e| match e {
                        StreamEvent::Content(t) => Some(json(&line(Reply::text(t)))),
                        _ => None,
                    })
                    .collect(),
                // A grounded answer's words as they are decoded.
                Event::Piece(p) if grounded.is_some() => {
                    let t = grounded
                        .as_mut()
                        .map(|(a, _)| a.feed(&p.text))
                        .unwrap_or_default();
                    if t.is_empty() {
                        Vec::new()
                    } else {
                        vec![json(&line(Reply::text(t)))]
                    }
                }
                Event::Piece(p) => vec![json(&line(Reply::text(p.text)))],
                Event::Done(done) => {
                    let mut last = Reply {
                        done_reason: Some(done_reason(done.finish_reason)),
                        timings: Some(timings(&done, started, load)),
                        ..Reply::default()
                    };
                    let mut v = Vec::new();
                    if let Some(r) = &mut reader {
                        for e in r.finish() {
                            if let StreamEvent::Content(text) = e {
                                v.push(json(&line(Reply::text(text))));
                            }
                        }
                        let (_, calls) = crate::tools::finished(&done.text, r.family);
                        if !calls.is_empty() {
                            v.push(json(&line(Reply {
                                calls: ollama_calls(calls),
                                ..Reply::default()
                            })));
                        }
                    }
                    if let Some((a, g)) = grounded.take() {
                        let (rest, cited) = a.finish();
                        if !rest.is_empty() {
                            v.push(json(&line(Reply::text(rest))));
                        }
                        last.outpost = Some(g.answer(&cited));
                    }
                    v.push(json(&line(last)));
                    v
                }
                Event::Started { .. } | Event::Failed(_) => Vec::new(),
            },
        ))
        .map(|mut l| {
            l.push('\n');
            Ok::<_, Infallible>(l)
        });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        HttpBody::from_stream(lines),
    )
        .into_response())
}

/// Calls in Ollama's shape: arguments as an object.
fn ollama_calls(calls: Vec<outpost_protocol::tools::ToolCall>) -> Vec<ToolCall> {
    calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            function: ToolCallFunction {
                index: u32::try_from(i).ok(),
                name: c.function.name,
                arguments: serde_json::from_str(&c.function.arguments).unwrap_or_default(),
            },
        })
        .collect()
}

/// What the shared path needs of a chat or generate request.
struct Ask<'a> {
    model: &'a str,
    keep_alive: Option<KeepAlive>,
    options: Option<&'a Options>,
    schema: Option<String>,
    stream: bool,
    /// A grounded chat (`outpost.retrieve`): sources, then the answer.
    grounding: Option<Grounding>,
}

/// A request's prompt, built once the model (and so its template) is
/// known, and its tools with the format they are asked in.
struct Built {
    prompt: Prompt,
    tools: Option<(outpost_protocol::tools::ToolPlan, Option<Family>)>,
}

impl Built {
    fn text(prompt: Prompt) -> Built {
        Built {
            prompt,
            tools: None,
        }
    }
}

/// The path `/api/chat` and `/api/generate` share: no prompt loads or
/// unloads the model; otherwise the model is leased, `prompt` is built
/// with its chat template, options and format are applied, and the answer
/// is made of `reply(..)` objects.
async fn generate_with<T: serde::Serialize + Send + 'static>(
    state: Arc<AppState>,
    started: Instant,
    ask: Ask<'_>,
    prompt: Option<impl FnOnce(&ServedModel) -> Built>,
    reply: impl Fn(Reply) -> T + Send + 'static,
) -> Result<Response, ApiError> {
    let Some(prompt) = prompt else {
        let why = load_or_unload(&state, ask.model, ask.keep_alive).await?;
        return Ok(Json(reply(Reply {
            done_reason: Some(why.into()),
            ..Reply::default()
        }))
        .into_response());
    };
    let lease = state.registry.acquire(ask.model, ask.keep_alive).await?;
    let built = prompt(lease.model());
    let mut g = GenerateRequest::new(built.prompt);
    apply_options(&mut g, ask.options, lease.spec())?;
    g.grammar = grammar(ask.schema)?;
    if let Some((plan, family)) = &built.tools {
        crate::tools::constrain(&mut g, plan, *family)?;
    }
    let shape = match (ask.grounding, built.tools) {
        (Some(grounding), _) => {
            g.grammar = Some(grounding.grammar.clone());
            g.grammar_triggers = Vec::new();
            Shape::Grounded(grounding)
        }
        (None, Some((_, family))) => Shape::Tools(family),
        (None, None) => Shape::Text,
    };
    answer(state, started, lease, g, (ask.stream, shape), reply).await
}

#[utoipa::path(post, path = "/api/chat", tag = "Ollama",
    summary = "Chat (Ollama)",
    description = "Streams newline-delimited JSON `ChatResponse` lines unless `stream` is false; the last has `done: true`. No messages and a `keep_alive`: loads or unloads the model.",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The answer", content(
            (ChatResponse = "application/json"),
            (ChatResponse = "application/x-ndjson"))),
        crate::error::OllamaErrors,
    ))]
pub async fn chat(State(state): Shared, body: Body) -> Response {
    ollama(chat_inner(state, body).await)
}

async fn chat_inner(state: Arc<AppState>, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    let mut req: ChatRequest = parse(body)?;
    tracing::debug!(model = %req.model, messages = req.messages.len(), "ollama chat");
    req.validate()?;
    let grounding = match req.retrieve().cloned() {
        Some(r) => Some(ground(&state, &r, &mut req.messages).await?),
        None => None,
    };
    let name = req.model.clone();
    let reply = move |r: Reply| ChatResponse {
        model: name.clone(),
        created_at: created_at(),
        message: ChatMessage {
            role: "assistant".into(),
            content: r.text,
            tool_calls: (!r.calls.is_empty()).then_some(r.calls),
            ..ChatMessage::default()
        },
        done: r.done_reason.is_some(),
        done_reason: r.done_reason,
        timings: r.timings,
        outpost: r.outpost,
    };
    let plan = req.tool_plan()?;
    let turns: Vec<crate::tools::Turn<'_>> = req
        .messages
        .iter()
        .map(|m| crate::tools::Turn {
            role: m.role.as_str(),
            text: m.content.clone(),
            calls: m
                .tool_calls
                .iter()
                .flatten()
                .map(|c| {
                    let args = serde_json::Value::Object(c.function.arguments.clone());
                    (String::new(), c.function.name.clone(), args)
                })
                .collect(),
            call_id: None,
            tool: m.tool_name.clone(),
        })
        .collect();
    let prompt = (!req.messages.is_empty()).then_some(|served: &ServedModel| {
        let asked = crate::tools::prepare(turns, plan, served.tool_family);
        Built {
            prompt: Prompt::Chat {
                messages: asked.messages,
                template: served.template.clone(),
                tools: asked.tools,
            },
            tools: asked.plan.map(|p| (p, asked.family)),
        }
    });
    let ask = Ask {
        model: &req.model,
        keep_alive: req.keep_alive,
        options: req.options.as_ref(),
        schema: req.json_schema()?,
        stream: req.streaming(),
        grounding,
    };
    generate_with(state, started, ask, prompt, reply).await
}

/// Retrieves for a grounded chat and rewrites its messages: the
/// instructions join (or become) the system message, the last user
/// message becomes the sources and the question.
async fn ground(
    state: &AppState,
    r: &Retrieve,
    messages: &mut Vec<ChatMessage>,
) -> Result<Grounding, ApiError> {
    let question = messages
        .last()
        .map(|m| m.content.clone())
        .unwrap_or_default();
    let (grounding, user) = crate::retrieve::prepare(
        &state.registry,
        &state.indexes,
        state.config.index_dir.as_deref(),
        r,
        question,
    )
    .await?;
    if let Some(last) = messages.last_mut() {
        last.content = user;
    }
    match messages.first_mut() {
        Some(first) if first.role == "system" => {
            first.content = crate::retrieve::system_text(Some(&first.content));
        }
        _ => messages.insert(
            0,
            ChatMessage {
                role: "system".into(),
                content: crate::retrieve::system_text(None),
                ..ChatMessage::default()
            },
        ),
    }
    Ok(grounding)
}

#[utoipa::path(post, path = "/api/generate", tag = "Ollama",
    summary = "Generate (Ollama)",
    description = "Streams newline-delimited JSON `GenerateResponse` lines unless `stream` is false; the last has `done: true`. No prompt and a `keep_alive`: loads or unloads the model.",
    request_body = OllamaGenerate,
    responses(
        (status = 200, description = "The answer", content(
            (GenerateResponse = "application/json"),
            (GenerateResponse = "application/x-ndjson"))),
        crate::error::OllamaErrors,
    ))]
pub async fn generate(State(state): Shared, body: Body) -> Response {
    ollama(generate_inner(state, body).await)
}

async fn generate_inner(state: Arc<AppState>, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: OllamaGenerate = parse(body)?;
    tracing::debug!(model = %req.model, "ollama generate");
    req.validate()?;
    let name = req.model.clone();
    let reply = move |r: Reply| GenerateResponse {
        model: name.clone(),
        created_at: created_at(),
        response: r.text,
        done: r.done_reason.is_some(),
        done_reason: r.done_reason,
        timings: r.timings,
    };
    let prompt = (!req.prompt.is_empty()).then_some(|served: &ServedModel| {
        if req.raw == Some(true) {
            return Built::text(Prompt::Text(req.prompt.clone()));
        }
        let mut messages = Vec::new();
        if let Some(system) = &req.system {
            messages.push(Message::new("system", system.as_str()));
        }
        messages.push(Message::new("user", req.prompt.as_str()));
        Built::text(Prompt::Chat {
            messages,
            template: served.template.clone(),
            tools: Vec::new(),
        })
    });
    let ask = Ask {
        model: &req.model,
        keep_alive: req.keep_alive,
        options: req.options.as_ref(),
        schema: req.json_schema()?,
        stream: req.streaming(),
        grounding: None,
    };
    generate_with(state, started, ask, prompt, reply).await
}

fn hex_digest(spec: &ModelSpec) -> String {
    spec.digest
        .strip_prefix("sha256:")
        .unwrap_or(&spec.digest)
        .to_string()
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

#[utoipa::path(get, path = "/api/tags", tag = "Ollama", summary = "The served models (Ollama)",
    responses((status = 200, description = "Every served model", body = TagsResponse)))]
pub async fn tags(State(state): Shared) -> Json<TagsResponse> {
    Json(TagsResponse {
        models: state
            .registry
            .specs()
            .map(|s| ListedModel {
                name: s.name.clone(),
                model: s.name.clone(),
                modified_at: rfc3339(since_epoch(s.modified)),
                size: s.size,
                digest: hex_digest(&s),
                details: s.details.clone(),
            })
            .collect(),
    })
}

#[utoipa::path(post, path = "/api/show", tag = "Ollama", summary = "One model's details (Ollama)",
    request_body = ShowRequest,
    responses(
        (status = 200, description = "Details, model info and the chat template", body = ShowResponse),
        (status = 400, description = "The body is malformed", body = ErrorResponse),
        (status = 404, description = "No served model has that name", body = ErrorResponse)))]
pub async fn show(State(state): Shared, body: Body) -> Response {
    ollama((|| {
        let req: ShowRequest = parse(body)?;
        let name = req.model_name()?;
        let spec = state
            .registry
            .spec(name)
            .ok_or_else(|| ApiError::unknown_model(name, &state.registry.names()))?;
        let template = match (&spec.template, &spec.chat_template) {
            (Some(t), _) => t.source().to_string(),
            (None, Some(own)) => own.clone(),
            (None, None) => String::new(),
        };
        Ok(Json(ShowResponse {
            modelfile: format!(
                "# Served by outpost {}\nFROM {}\n",
                env!("CARGO_PKG_VERSION"),
                spec.path.display()
            ),
            parameters: format!(
                "num_ctx {}\ntemperature 0.8\ntop_k 40\ntop_p 0.9\nrepeat_penalty 1.1",
                spec.ctx_per_slot
            ),
            template,
            details: spec.details.clone(),
            model_info: spec.info.iter().cloned().collect(),
            // As Ollama names them: an embedding model only embeds; the
            // others complete and call tools (the generic tool format).
            capabilities: if spec.embedding.is_some() {
                vec!["embedding".into()]
            } else {
                vec!["completion".into(), "tools".into()]
            },
            modified_at: rfc3339(since_epoch(spec.modified)),
        })
        .into_response())
    })())
}

#[utoipa::path(get, path = "/api/ps", tag = "Ollama", summary = "The loaded models (Ollama)",
    responses((status = 200, description = "Models in memory, with their size and expiry", body = PsResponse)))]
pub async fn ps(State(state): Shared) -> Json<PsResponse> {
    let now_sys = SystemTime::now();
    let now = Instant::now();
    // Ollama shows a far-future time for models kept forever.
    let forever = since_epoch(now_sys) + Duration::from_secs(100 * 365 * 86_400);
    Json(PsResponse {
        models: state
            .registry
            .loaded()
            .into_iter()
            .map(|l| {
                let expires = match (l.keep_alive, l.expires) {
                    (KeepAlive::Forever, _) => forever,
                    (_, Some(t)) => since_epoch(now_sys) + t.saturating_duration_since(now),
                    // Busy: it expires a keep-alive after its last request.
                    (KeepAlive::For(d), None) => since_epoch(now_sys) + d,
                };
                RunningModel {
                    name: l.spec.name.clone(),
                    model: l.spec.name.clone(),
                    size: l.spec.memory.total(),
                    digest: hex_digest(&l.spec),
                    details: l.spec.details.clone(),
                    expires_at: rfc3339(expires),
                    size_vram: 0,
                    context_length: u64::from(l.spec.ctx_per_slot),
                }
            })
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/version", tag = "Ollama", summary = "The server's version (Ollama)",
    responses((status = 200, description = "The version", body = VersionResponse)))]
pub async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        version: env!("CARGO_PKG_VERSION").into(),
    })
}
