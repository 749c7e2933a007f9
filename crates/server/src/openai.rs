//! The OpenAI-compatible endpoints: parse → validate → convert → run on the
//! model's scheduler → convert back. Streaming answers are SSE; a client
//! that goes away cancels its generation.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use outpost_engine::{
    Completion as EngineCompletion, Event, GenerateRequest, Model, Piece, Prompt, SamplingParams,
};
use outpost_protocol::openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest,
    ChoiceLogprobs, ChunkChoice, Completion, CompletionChoice, CompletionLogprobs,
    CompletionRequest, Delta, ModelCard, ModelList, TokenLogprob, TopLogprob, Usage,
};
#[allow(unused_imports)] // named in the OpenAPI attributes only
use outpost_protocol::ApiErrorBody;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::error::ApiError;
use crate::flow::{forward, json, next_id, run_to_end, worker_died, Framing};
use crate::served::now;
use crate::state::AppState;

/// Server-sent events: errors in OpenAI's shape, then `[DONE]`.
const SSE: Framing = Framing {
    error: |e| json(&e.body),
    end: Some("[DONE]"),
};

type Shared = State<Arc<AppState>>;

pub(crate) type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            "invalid_request_error",
            "body_too_large_or_unreadable",
            None,
            format!("the request body could not be read: {e}"),
        )
    })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::from_json(&e))
}

fn sampling(temperature: Option<f32>, top_p: Option<f32>, seed: Option<i64>) -> SamplingParams {
    SamplingParams {
        // OpenAI's defaults: temperature 1, top_p 1, no top-k / min-p.
        temperature: temperature.unwrap_or(1.0),
        top_k: 0,
        top_p: top_p.unwrap_or(1.0),
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        seed: seed.and_then(|s| u32::try_from(s).ok()),
    }
}

fn token_logprob(model: &Model, p: &Piece) -> Option<TokenLogprob> {
    let text = |t: i32| {
        let bytes = model.token_bytes(t, false);
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    };
    let lp = p.logprob?;
    let (token, bytes) = text(p.token);
    Some(TokenLogprob {
        token,
        logprob: lp,
        bytes,
        top_logprobs: p
            .top
            .iter()
            .map(|t| {
                let (token, bytes) = text(t.token);
                TopLogprob {
                    token,
                    logprob: t.logprob,
                    bytes,
                }
            })
            .collect(),
    })
}

fn finish(done: &EngineCompletion) -> String {
    done.finish_reason.as_str().to_string()
}

fn usage(done: &EngineCompletion) -> Usage {
    Usage::new(done.prompt_tokens, done.tokens.len(), done.cached_tokens)
}

/// Feeds a finished local generation's timings to the router's speeds.
fn measured(state: &AppState, done: &EngineCompletion) {
    if let Some(r) = &state.router {
        r.speeds.local_sample(
            done.prompt_tokens.saturating_sub(done.cached_tokens),
            done.prompt_ms,
            done.tokens.len(),
            done.generate_ms,
        );
    }
}

/// Chat on the local model.
pub(crate) async fn chat_local(state: Arc<AppState>, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    let mut req: ChatCompletionRequest = parse(body)?;
    tracing::debug!(model = %req.model, stream = req.stream, messages = req.messages.len(), "chat completion");
    req.validate()?;
    let grounding = crate::retrieve::prepare_openai(
        &state.registry,
        &state.indexes,
        state.config.index_dir.as_deref(),
        &mut req,
    )
    .await?;
    let lease = state.registry.acquire(&req.model, None).await?;
    let served = lease.model().clone();
    let turns = req
        .messages
        .iter()
        .map(|m| crate::tools::Turn {
            role: m.role.as_str(),
            text: m.text(),
            calls: m
                .tool_calls
                .iter()
                .flatten()
                .map(|c| {
                    let args = serde_json::from_str(&c.function.arguments).unwrap_or_default();
                    (c.id.clone(), c.function.name.clone(), args)
                })
                .collect(),
            call_id: m.tool_call_id.clone(),
            tool: m
                .tool_call_id
                .as_deref()
                .and_then(|id| req.call_name(id))
                .map(str::to_string),
        })
        .collect();
    let asked = crate::tools::prepare(turns, req.tool_plan()?, served.tool_family);
    let plan = asked.plan;
    let family = asked.family;
    let mut g = GenerateRequest::new(Prompt::Chat {
        messages: asked.messages,
        template: served.template.clone(),
        tools: asked.tools,
    });
    g.sampling = sampling(req.temperature, req.top_p, req.seed);
    g.max_tokens = req.max_tokens();
    g.stop = req.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if let Some(schema) = req.json_schema() {
        g.grammar = Some(outpost_engine::json_schema_grammar(&schema).map_err(|e| {
            ApiError::bad_request(
                Some("response_format"),
                "invalid_value",
                format!("the JSON schema cannot be enforced: {e}"),
            )
        })?);
    }
    if let Some(plan) = &plan {
        crate::tools::constrain(&mut g, plan, family)?;
    }
    if let Some(grounding) = &grounding {
        g.grammar = Some(grounding.grammar.clone());
    }
    let tooled = plan.is_some();
    let want_logprobs = req.logprobs == Some(true);
    if want_logprobs {
        g.top_logprobs = Some(req.top_logprobs.unwrap_or(0) as usize);
    }
    let handle = lease.submit(g)?;
    let id = format!("chatcmpl-{}", next_id());
    state.answers.issued(&id, lease.spec_arc());
    let model = served.model.clone();
    let (name, fingerprint) = (served.name.clone(), served.digest.clone());
    if !req.stream {
        let (done, pieces) = run_to_end(state.clone(), started, lease, handle).await?;
        measured(&state, &done);
        let logprobs = want_logprobs.then(|| ChoiceLogprobs {
            content: pieces
                .iter()
                .filter_map(|p| token_logprob(&model, p))
                .collect(),
        });
        let (content, calls, finish_reason) = if tooled {
            let (content, calls) = crate::tools::finished(&done.text, family);
            let reason = if calls.is_empty() {
                finish(&done)
            } else {
                "tool_calls".to_string()
            };
            (content, (!calls.is_empty()).then_some(calls), reason)
        } else {
            (Some(done.text.clone()), None, finish(&done))
        };
        let (content, outpost) = match &grounding {
            Some(g) => {
                let (text, answer) = g.finish(&done.text);
                (Some(text), Some(answer))
            }
            None => (content, None),
        };
        return Ok(Json(ChatCompletion {
            id,
            object: "chat.completion".into(),
            created: now(),
            model: name,
            system_fingerprint: fingerprint,
            choices: vec![ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".into(),
                    content,
                    tool_calls: calls,
                },
                logprobs,
                finish_reason,
            }],
            usage: usage(&done),
            outpost,
        })
        .into_response());
    }
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let created = now();
    let chunk = move |delta: Delta,
                      logprobs: Option<ChoiceLogprobs>,
                      finish_reason: Option<String>,
                      usage: Option<Usage>| {
        let choices = if usage.is_some() {
            Vec::new()
        } else {
            vec![ChunkChoice {
                index: 0,
                delta,
                logprobs,
                finish_reason,
            }]
        };
        ChatCompletionChunk {
            id: id.clone(),
            object: "chat.completion.chunk".into(),
            created,
            model: name.clone(),
            system_fingerprint: fingerprint.clone(),
            choices,
            usage,
            outpost: None,
        }
    };
    let first = chunk(
        Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            tool_calls: None,
        },
        None,
        None,
        None,
    );
    let state2 = state.clone();
    let mut reader = tooled.then(|| crate::tools::Reader::new(family));
    // A grounded answer streams its words as they are decoded from the
    // JSON it is written in; its citations come on the finishing chunk.
    let mut grounded = grounding.map(|g| (outpost_index::ground::AnswerStream::default(), g));
    let events = ReceiverStream::new(forward(
        state.clone(),
        started,
        lease,
        handle,
        SSE,
        move |ev| {
            // A chunk of text alone.
            let say = |text: String| {
                json(&chunk(
                    Delta {
                        content: Some(text),
                        ..Delta::default()
                    },
                    None,
                    None,
                    None,
                ))
            };
            match ev {
                Event::Piece(p) if grounded.is_some() => {
                    let text = grounded
                        .as_mut()
                        .map(|(g, _)| g.feed(&p.text))
                        .unwrap_or_default();
                    if text.is_empty() {
                        Vec::new()
                    } else {
                        vec![say(text)]
                    }
                }
                Event::Piece(p) if reader.is_some() => {
                    let events = reader.as_mut().map(|r| r.feed(&p.text)).unwrap_or_default();
                    events
                        .into_iter()
                        .map(|e| json(&chunk(tool_delta(e, family), None, None, None)))
                        .collect()
                }
                Event::Piece(p) => {
                    let lp = if want_logprobs {
                        token_logprob(&model, &p).map(|t| ChoiceLogprobs { content: vec![t] })
                    } else {
                        None
                    };
                    if p.text.is_empty() && lp.is_none() {
                        Vec::new()
                    } else {
                        vec![json(&chunk(
                            Delta {
                                role: None,
                                content: Some(p.text),
                                tool_calls: None,
                            },
                            lp,
                            None,
                            None,
                        ))]
                    }
                }
                Event::Done(done) => {
                    measured(&state2, &done);
                    let mut v = Vec::new();
                    let mut reason = finish(&done);
                    if let Some(r) = &mut reader {
                        for e in r.finish() {
                            v.push(json(&chunk(tool_delta(e, family), None, None, None)));
                        }
                        if r.calls > 0 {
                            reason = "tool_calls".into();
                        }
                    }
                    let mut last = chunk(Delta::default(), None, Some(reason), None);
                    if let Some((g, grounding)) = grounded.take() {
                        let (rest, cited) = g.finish();
                        if !rest.is_empty() {
                            v.push(say(rest));
                        }
                        last.outpost = Some(grounding.answer(&cited));
                    }
                    v.push(json(&last));
                    if include_usage {
                        v.push(json(&chunk(
                            Delta::default(),
                            None,
                            None,
                            Some(usage(&done)),
                        )));
                    }
                    v
                }
                Event::Started { .. } | Event::Failed(_) => Vec::new(),
            }
        },
    ));
    let stream = tokio_stream::once(json(&first))
        .chain(events)
        .map(|d| Ok::<_, Infallible>(SseEvent::default().data(d)));
    Ok(Sse::new(stream).into_response())
}

/// A streamed tool answer's event as a chunk's delta.
fn tool_delta(
    e: outpost_protocol::tool_stream::StreamEvent,
    family: Option<outpost_protocol::tool_native::Family>,
) -> Delta {
    use outpost_protocol::tool_stream::StreamEvent;
    use outpost_protocol::tools::{FunctionCallDelta, ToolCallDelta};
    let call = |d: ToolCallDelta| Delta {
        tool_calls: Some(vec![d]),
        ..Delta::default()
    };
    match e {
        StreamEvent::Content(text) => Delta {
            content: Some(text),
            ..Delta::default()
        },
        StreamEvent::CallStart { index, name } => call(ToolCallDelta {
            index,
            id: Some(crate::tools::call_id(family)),
            kind: Some("function".into()),
            function: FunctionCallDelta {
                name: Some(name),
                arguments: Some(String::new()),
            },
        }),
        StreamEvent::CallArgs { index, fragment } => call(ToolCallDelta {
            index,
            function: FunctionCallDelta {
                name: None,
                arguments: Some(fragment),
            },
            ..ToolCallDelta::default()
        }),
    }
}

/// A completion on the local model.
pub(crate) async fn completions_local(
    state: Arc<AppState>,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: CompletionRequest = parse(body)?;
    tracing::debug!(model = %req.model, stream = req.stream, "completion");
    req.validate()?;
    let lease = state.registry.acquire(&req.model, None).await?;
    let served = lease.model().clone();
    let prompt = req.prompt_text()?.to_string();
    let model = served.model.clone();
    let (name, fingerprint) = (served.name.clone(), served.digest.clone());
    let id = format!("cmpl-{}", next_id());
    state.answers.issued(&id, lease.spec_arc());
    let make = move |text: String,
                     logprobs: Option<CompletionLogprobs>,
                     finish_reason: Option<String>,
                     usage: Option<Usage>| Completion {
        id: id.clone(),
        object: "text_completion".into(),
        created: now(),
        model: name.clone(),
        system_fingerprint: fingerprint.clone(),
        choices: vec![CompletionChoice {
            index: 0,
            text,
            logprobs,
            finish_reason,
        }],
        usage,
    };
    let max_tokens = req
        .max_tokens
        .unwrap_or(CompletionRequest::DEFAULT_MAX_TOKENS);
    if max_tokens == 0 {
        // Prompt scoring: the logprob of every prompt token, nothing generated.
        let tokens = model.tokenize(&prompt, true);
        let scored = {
            let (model, tokens) = (model.clone(), tokens.clone());
            tokio::task::spawn_blocking(move || model.score(&tokens, None))
                .await
                .map_err(worker_died)??
        };
        let mut lp = CompletionLogprobs::default();
        let mut offset = 0;
        for (i, &t) in tokens.iter().enumerate() {
            let text = String::from_utf8_lossy(&model.token_bytes(t, false)).into_owned();
            lp.text_offset.push(offset);
            offset += text.len();
            lp.tokens.push(text);
            lp.token_logprobs.push(if i == 0 {
                None
            } else {
                scored.get(i - 1).copied()
            });
            lp.top_logprobs.push(None);
        }
        let usage = Usage::new(tokens.len(), 0, 0);
        return Ok(Json(make(
            if req.echo { prompt } else { String::new() },
            req.logprobs.map(|_| lp),
            Some("length".into()),
            Some(usage),
        ))
        .into_response());
    }
    let mut g = GenerateRequest::new(Prompt::Text(prompt.clone()));
    g.sampling = sampling(req.temperature, req.top_p, req.seed);
    g.max_tokens = Some(max_tokens);
    g.stop = req.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    g.top_logprobs = req.logprobs.map(|n| n as usize);
    let handle = lease.submit(g)?;
    let echo = if req.echo { prompt } else { String::new() };
    if !req.stream {
        let (done, pieces) = run_to_end(state.clone(), started, lease, handle).await?;
        measured(&state, &done);
        let logprobs = req.logprobs.map(|_| {
            let mut lp = CompletionLogprobs::default();
            let mut offset = echo.len();
            for p in pieces.iter().filter(|p| p.token >= 0) {
                let text = String::from_utf8_lossy(&model.token_bytes(p.token, false)).into_owned();
                lp.text_offset.push(offset);
                offset += text.len();
                lp.tokens.push(text);
                lp.token_logprobs.push(p.logprob);
                lp.top_logprobs.push(Some(
                    p.top
                        .iter()
                        .map(|t| {
                            (
                                String::from_utf8_lossy(&model.token_bytes(t.token, false))
                                    .into_owned(),
                                t.logprob,
                            )
                        })
                        .collect(),
                ));
            }
            lp
        });
        return Ok(Json(make(
            format!("{echo}{}", done.text),
            logprobs,
            Some(finish(&done)),
            Some(usage(&done)),
        ))
        .into_response());
    }
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let first = (!echo.is_empty()).then(|| json(&make(echo, None, None, None)));
    let make2 = make.clone();
    let state2 = state.clone();
    let events = ReceiverStream::new(forward(
        state.clone(),
        started,
        lease,
        handle,
        SSE,
        move |ev| match ev {
            Event::Piece(p) if p.text.is_empty() => Vec::new(),
            Event::Piece(p) => vec![json(&make2(p.text, None, None, None))],
            Event::Done(done) => {
                measured(&state2, &done);
                let mut v = vec![json(&make2(String::new(), None, Some(finish(&done)), None))];
                if include_usage {
                    let mut u = make2(String::new(), None, None, Some(usage(&done)));
                    u.choices.clear();
                    v.push(json(&u));
                }
                v
            }
            Event::Started { .. } | Event::Failed(_) => Vec::new(),
        },
    ));
    let stream = tokio_stream::iter(first)
        .chain(events)
        .map(|d| Ok::<_, Infallible>(SseEvent::default().data(d)));
    Ok(Sse::new(stream).into_response())
}

#[utoipa::path(get, path = "/v1/models", tag = "OpenAI",
    summary = "The served models (OpenAI)",
    responses((status = 200, description = "Every served model, loaded or not", body = ModelList)))]
pub async fn models(State(state): Shared) -> Json<ModelList> {
    Json(ModelList {
        object: "list".into(),
        data: state
            .registry
            .specs()
            .map(|m| ModelCard {
                id: m.name.clone(),
                object: "model".into(),
                created: m
                    .modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                owned_by: "outpost".into(),
            })
            .collect(),
    })
}
