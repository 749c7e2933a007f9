//! Hybrid routing of the OpenAI endpoints (with `outpost serve
//! --route-policy` or `--cloud-url`): gather the request's signals, let
//! `outpost_router::decide` pick local or cloud, run it there, fall back to
//! local when the cloud fails (unless `cloud_only`: 503), and explain every
//! decision (`x-outpost-route` header, /metrics counter, telemetry event).
//! Cloud-bound bodies go through the guard first; placeholders in the
//! answer are restored, streamed or not.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body as HttpBody, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use outpost_protocol::openai::{ChatCompletionRequest, CompletionRequest};
use outpost_protocol::telemetry::{EventData, Route as TelemetryRoute, RouteTarget};
use outpost_router::{
    decide, restore_answer, restore_stream, total_tokens, CloudAnswer, Decision, Endpoint, Mode,
    Reason, RequestInfo, RouteEvent, Router, Target, HEADER_APP, HEADER_BUDGET, HEADER_MODE,
    HEADER_REGION, HEADER_ROUTE,
};
use serde_json::Value;

use crate::error::ApiError;
use crate::openai::{self, Body};
use crate::state::AppState;

/// What routing needs from a parsed request.
struct Parsed {
    model: String,
    stream: bool,
    text: String,
    max_tokens: Option<u32>,
    /// The client asked for logprobs itself (the cascade may add them).
    logprobs: bool,
}

fn parse(endpoint: Endpoint, body: &Bytes) -> Result<Parsed, ApiError> {
    let body = Ok(body.clone());
    Ok(match endpoint {
        Endpoint::Chat => {
            let req: ChatCompletionRequest = openai::parse(body)?;
            req.validate()?;
            let text: Vec<String> = req.messages.iter().map(|m| m.text()).collect();
            Parsed {
                text: text.join("\n"),
                max_tokens: req.max_tokens(),
                logprobs: req.logprobs == Some(true),
                model: req.model,
                stream: req.stream,
            }
        }
        Endpoint::Completions => {
            let req: CompletionRequest = openai::parse(body)?;
            req.validate()?;
            Parsed {
                text: req.prompt_text()?.to_string(),
                max_tokens: Some(
                    req.max_tokens
                        .unwrap_or(CompletionRequest::DEFAULT_MAX_TOKENS),
                ),
                logprobs: req.logprobs.is_some(),
                model: req.model,
                stream: req.stream,
            }
        }
    })
}

/// A latency worth sending: finite and >= 0.
fn finite(ms: f64) -> Option<f64> {
    (ms.is_finite() && ms >= 0.0).then_some(ms)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Routes one OpenAI request.
pub(crate) async fn handle(
    state: Arc<AppState>,
    router: Arc<Router>,
    endpoint: Endpoint,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    match route(&state, &router, endpoint, &headers, bytes).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(
    state: &Arc<AppState>,
    router: &Arc<Router>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let p = parse(endpoint, &bytes)?;
    let Some(spec) = state.registry.spec(&p.model) else {
        // Unknown models get the local 404 that lists the known ones.
        return Ok(local(state, endpoint, bytes).await);
    };
    let local_ctx = spec.ctx_per_slot;
    let slots = state.config.slots.max(1) as f64;
    let queued = state
        .registry
        .loaded()
        .iter()
        .find(|l| l.model.name == p.model)
        .and_then(|l| {
            l.model
                .scheduler()
                .ok()
                .map(|s| s.stats().queued.load(std::sync::atomic::Ordering::Relaxed) as f64 / slots)
        })
        .unwrap_or(0.0);
    let info = RequestInfo {
        app: header(headers, HEADER_APP),
        bearer: header(headers, header::AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer ")),
        mode: header(headers, HEADER_MODE),
        latency_budget_ms: header(headers, HEADER_BUDGET),
        region: header(headers, HEADER_REGION),
        text: &p.text,
        max_tokens: p.max_tokens,
        local_ctx,
        queued_per_slot: queued,
    };
    let signals = router
        .signals(&info)
        .map_err(|e| ApiError::bad_request(Some(e.header()), "invalid_header", e.to_string()))?;
    let regions = router
        .regions(info.region)
        .map_err(|e| ApiError::bad_request(Some(e.header()), "invalid_header", e.to_string()))?;
    let decision = decide(&signals);
    let explain = |d: Decision, redacted: usize, mut res: Response| {
        router.record(RouteEvent {
            target: d.target,
            reason: d.reason,
        });
        // With --store, the decision also goes to the telemetry spool (the
        // agent ships it to the fleet) once the answer is sent: target,
        // reason, tokens, latency and the decision's signals (for the
        // fleet's economics report), never the text.
        if let Some(link) = &state.store {
            let (link, spec) = (link.clone(), spec.clone());
            let event = TelemetryRoute {
                target: match d.target {
                    Target::Local => RouteTarget::Local,
                    Target::Cloud => RouteTarget::Cloud,
                },
                reason: d.reason.as_str().to_string(),
                prompt_tokens: Some(signals.prompt_tokens),
                completion_tokens: None,
                latency_ms: None,
                complexity: Some(f64::from(signals.complexity).clamp(0.0, 1.0)),
                complexity_threshold: Some(f64::from(signals.complexity_threshold).clamp(0.0, 1.0)),
                local_predicted_ms: finite(signals.local_predicted_ms),
                cloud_predicted_ms: finite(signals.cloud_predicted_ms),
            };
            res = crate::route_cost::watch(res, started, move |c| {
                link.record(
                    &spec,
                    EventData::Route(TelemetryRoute {
                        prompt_tokens: c.prompt_tokens.or(event.prompt_tokens),
                        completion_tokens: c.completion_tokens,
                        latency_ms: finite(c.latency_ms),
                        ..event
                    }),
                );
            });
        }
        let mut v = format!("{}; reason={}", d.target.as_str(), d.reason.as_str());
        if redacted > 0 {
            v.push_str(&format!("; redacted={redacted}"));
        }
        if let Ok(v) = HeaderValue::from_str(&v) {
            res.headers_mut().insert(HEADER_ROUTE, v);
        }
        res
    };
    if decision.target == Target::Local {
        let cascade = &router.policy.cascade;
        if cascade.enabled
            && signals.mode == Mode::Auto
            && !p.stream
            && decision.reason == Reason::Simple
        {
            match try_local_first(state, endpoint, &bytes, &p, cascade.min_mean_logprob).await {
                Ok(res) => return Ok(explain(decision, 0, res)),
                Err(()) => {
                    let d = Decision {
                        target: Target::Cloud,
                        reason: Reason::Cascade,
                    };
                    if let Ok((res, n)) =
                        cloud(router, endpoint, &bytes, &p, &regions, started).await
                    {
                        return Ok(explain(d, n, res));
                    }
                }
            }
        }
        return Ok(explain(decision, 0, local(state, endpoint, bytes).await));
    }
    match cloud(router, endpoint, &bytes, &p, &regions, started).await {
        Ok((res, n)) => Ok(explain(decision, n, res)),
        Err(e) if signals.mode == Mode::CloudOnly => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "cloud_unavailable",
            None,
            format!("{e}; mode cloud_only never answers locally: retry later, or send {HEADER_MODE}: prefer_cloud to allow the local model"),
        )
        .retry_after(5)),
        Err(e) => {
            tracing::warn!(error = %e, "route: the cloud failed; answering locally");
            let d = Decision {
                target: Target::Local,
                reason: Reason::CloudFailed,
            };
            Ok(explain(d, 0, local(state, endpoint, bytes).await))
        }
    }
}

/// The local handler, as without a router.
async fn local(state: &Arc<AppState>, endpoint: Endpoint, bytes: Bytes) -> Response {
    let body: Body = Ok(bytes);
    let r = match endpoint {
        Endpoint::Chat => openai::chat_local(state.clone(), body).await,
        Endpoint::Completions => openai::completions_local(state.clone(), body).await,
    };
    r.unwrap_or_else(IntoResponse::into_response)
}

/// Cascade: answer locally with logprobs; `Err(())` when the mean token
/// logprob is below `min` (the caller escalates), else the local answer
/// (without the logprobs the client did not ask for).
async fn try_local_first(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    bytes: &Bytes,
    p: &Parsed,
    min: f32,
) -> Result<Response, ()> {
    let Ok(mut req) = serde_json::from_slice::<Value>(bytes) else {
        return Err(());
    };
    match endpoint {
        Endpoint::Chat => req["logprobs"] = Value::Bool(true),
        Endpoint::Completions => {
            if req.get("logprobs").is_none_or(Value::is_null) {
                req["logprobs"] = Value::from(0);
            }
        }
    }
    let res = local(state, endpoint, Bytes::from(req.to_string())).await;
    if !res.status().is_success() {
        return Ok(res);
    }
    let (parts, body) = res.into_parts();
    let Ok(raw) = axum::body::to_bytes(body, usize::MAX).await else {
        return Err(());
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(&raw) else {
        return Err(());
    };
    let lps: Vec<f64> = match endpoint {
        Endpoint::Chat => v
            .pointer("/choices/0/logprobs/content")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|t| t["logprob"].as_f64()).collect()),
        Endpoint::Completions => v
            .pointer("/choices/0/logprobs/token_logprobs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect()),
    }
    .unwrap_or_default();
    let mean = if lps.is_empty() {
        0.0
    } else {
        lps.iter().sum::<f64>() / lps.len() as f64
    };
    if mean < min as f64 {
        return Err(());
    }
    if !p.logprobs {
        if let Some(c) = v.pointer_mut("/choices/0") {
            c["logprobs"] = Value::Null;
        }
    }
    let mut res = Response::from_parts(parts, HttpBody::from(v.to_string()));
    res.headers_mut().remove(header::CONTENT_LENGTH);
    Ok(res)
}

/// Sends the guarded request to the cloud; (response, values redacted).
async fn cloud(
    router: &Arc<Router>,
    endpoint: Endpoint,
    bytes: &Bytes,
    p: &Parsed,
    regions: &[outpost_router::Region],
    started: Instant,
) -> Result<(Response, usize), String> {
    let Some(client) = &router.cloud else {
        return Err("no cloud is configured".into());
    };
    let mut body: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("request body: {e}"))?;
    body["model"] = Value::String(client.model_for(&p.model));
    let (guarded, vault, redacted) = router.redact(body, regions).map_err(|e| e.to_string())?;
    let answer = client.send(endpoint, &guarded, p.stream).await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            if e.is_outage() {
                router.breaker.failure(Instant::now());
            }
            return Err(e.to_string());
        }
    };
    router.breaker.success();
    let prompt_estimate = outpost_router::estimate_tokens(p.text.len()) as usize;
    match answer {
        CloudAnswer::Json(mut v) => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let completion = v
                .pointer("/usage/completion_tokens")
                .and_then(Value::as_u64)
                .map(|n| n as usize);
            // No first-token time without a stream: keep the current estimate of it
            // (at most the whole time) and learn the per-token part.
            router
                .speeds
                .cloud_sample(ms.min(router.speeds.cloud_ms(0)), ms, completion);
            router
                .spend
                .add_tokens(total_tokens(&v).unwrap_or(prompt_estimate + completion.unwrap_or(0)));
            restore_answer(&mut v, &vault);
            Ok((axum::Json(v).into_response(), redacted))
        }
        CloudAnswer::Stream(upstream) => {
            let r = router.clone();
            let stream = restore_stream(upstream, vault, started, move |s| {
                if s.broken {
                    r.breaker.failure(Instant::now());
                }
                r.speeds
                    .cloud_sample(s.first_ms, s.total_ms, Some(s.text_chunks));
                r.spend
                    .add_tokens(s.total_tokens.unwrap_or(prompt_estimate + s.text_chunks));
            });
            let mut res = HttpBody::from_stream(stream).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok((res, redacted))
        }
    }
}
