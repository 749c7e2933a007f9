//! Putting the guard's placeholders back into the cloud's answer: in a
//! whole JSON answer, or event by event in an SSE stream, where a
//! placeholder may arrive split across events (the guard's [`Restorer`]
//! holds a possible placeholder prefix until it is complete). Tool calls'
//! arguments are JSON text: their string values are restored one by one
//! and the arguments written again, so a restored value that holds a
//! quote cannot break them; in a stream a call's argument fragments are
//! therefore held and sent, restored, with the finishing chunk.

use std::time::Instant;

use bytes::Bytes;
use outpost_guard::{Restorer, Vault};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

/// The answer text fields of a chat or completion answer (or chunk).
fn texts(choice: &mut Value) -> Option<&mut String> {
    let path = ["/message/content", "/delta/content", "/text"]
        .into_iter()
        .find(|p| choice.pointer(p).is_some_and(Value::is_string))?;
    match choice.pointer_mut(path) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn restored(text: &str, vault: &Vault) -> String {
    let mut r = Restorer::new(vault);
    let mut out = r.push(text.as_bytes());
    out += &r.finish();
    out
}

/// Every string in a JSON value, restored.
fn restore_strings(v: &mut Value, vault: &Vault) {
    match v {
        Value::String(s) => *s = restored(s, vault),
        Value::Array(a) => a.iter_mut().for_each(|x| restore_strings(x, vault)),
        Value::Object(o) => o.values_mut().for_each(|x| restore_strings(x, vault)),
        _ => {}
    }
}

/// A call's arguments (JSON text) with their string values restored; text
/// that is not JSON is restored as text.
fn restore_arguments(arguments: &str, vault: &Vault) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(mut v) => {
            restore_strings(&mut v, vault);
            v.to_string()
        }
        Err(_) => restored(arguments, vault),
    }
}

/// Restores placeholders in every choice of a non-streamed answer: its
/// text and its tool calls' arguments.
pub fn restore_answer(answer: &mut Value, vault: &Vault) {
    if let Some(Value::Array(choices)) = answer.get_mut("choices") {
        for c in choices {
            if let Some(t) = texts(c) {
                *t = restored(t, vault);
            }
            if let Some(Value::Array(calls)) = c.pointer_mut("/message/tool_calls") {
                for call in calls {
                    if let Some(Value::String(a)) = call.pointer_mut("/function/arguments") {
                        *a = restore_arguments(a, vault);
                    }
                }
            }
        }
    }
}

/// Holds a streamed choice's tool-call argument fragments (blanking them
/// in the chunk) until the call is complete.
fn hold_arguments(choice: &mut Value, held: &mut std::collections::BTreeMap<u64, String>) {
    if let Some(Value::Array(calls)) = choice.pointer_mut("/delta/tool_calls") {
        for call in calls {
            let index = call["index"].as_u64().unwrap_or(0);
            if let Some(Value::String(a)) = call.pointer_mut("/function/arguments") {
                held.entry(index).or_default().push_str(&std::mem::take(a));
            }
        }
    }
}

/// `usage.total_tokens` of an answer or final chunk.
pub fn total_tokens(v: &Value) -> Option<usize> {
    v.pointer("/usage/total_tokens")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
}

/// What a finished stream reports, for the estimates and the spend.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamStats {
    pub first_ms: f64,
    pub total_ms: f64,
    /// Chunks that carried text (about one per token).
    pub text_chunks: usize,
    pub total_tokens: Option<usize>,
    /// The upstream stream broke before `[DONE]`.
    pub broken: bool,
}

/// Turns the cloud's SSE body into restored SSE events (`data: ...\n\n`
/// byte chunks); `done` gets the stream's statistics at the end. Text a
/// restorer still holds is flushed into the chunk that carries the
/// `finish_reason` (or before `[DONE]`).
pub fn restore_stream(
    upstream: reqwest::Response,
    vault: Vault,
    started: Instant,
    done: impl FnOnce(StreamStats) + Send + 'static,
) -> ReceiverStream<Result<Bytes, std::io::Error>> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(32);
    tokio::spawn(async move {
        let mut stats = StreamStats::default();
        let mut restorer = Some(Restorer::new(&vault));
        let mut held = std::collections::BTreeMap::<u64, String>::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut body = upstream.bytes_stream();
        let mut saw_done = false;
        'read: while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                stats.broken = true;
                break;
            };
            if stats.first_ms == 0.0 {
                stats.first_ms = started.elapsed().as_secs_f64() * 1000.0;
            }
            buf.extend_from_slice(&chunk);
            while let Some(end) = event_end(&buf) {
                let event: Vec<u8> = buf.drain(..end.1).take(end.0).collect();
                let text = String::from_utf8_lossy(&event);
                for line in text.lines() {
                    let Some(data) = line.strip_prefix("data:") else {
                        continue;
                    };
                    let data = data.trim();
                    if data == "[DONE]" {
                        if let Some(r) = restorer.take() {
                            let rest = r.finish();
                            if !rest.is_empty() {
                                let tail = serde_json::json!({"choices": [{"index": 0, "delta": {"content": rest}}]});
                                if !send(&tx, &tail.to_string()).await {
                                    break 'read;
                                }
                            }
                        }
                        saw_done = true;
                        if !send(&tx, "[DONE]").await {
                            break 'read;
                        }
                        continue;
                    }
                    let Ok(mut v) = serde_json::from_str::<Value>(data) else {
                        // Not JSON: an upstream error line; pass it on as is.
                        if !send(&tx, data).await {
                            break 'read;
                        }
                        continue;
                    };
                    if let Some(n) = total_tokens(&v) {
                        stats.total_tokens = Some(n);
                    }
                    if let Some(Value::Array(choices)) = v.get_mut("choices") {
                        for c in choices {
                            let finishing = c.get("finish_reason").is_some_and(|f| !f.is_null());
                            hold_arguments(c, &mut held);
                            if finishing && !held.is_empty() {
                                let calls: Vec<Value> = std::mem::take(&mut held)
                                    .into_iter()
                                    .map(|(index, a)| {
                                        serde_json::json!({"index": index,
                                        "function": {"arguments": restore_arguments(&a, &vault)}})
                                    })
                                    .collect();
                                c["delta"]["tool_calls"] = Value::Array(calls);
                            }
                            let piece = texts(c).map(std::mem::take);
                            let mut out = String::new();
                            if let (Some(r), Some(p)) = (restorer.as_mut(), piece.as_ref()) {
                                if !p.is_empty() {
                                    stats.text_chunks += 1;
                                }
                                out = r.push(p.as_bytes());
                            }
                            if finishing {
                                if let Some(r) = restorer.take() {
                                    out += &r.finish();
                                }
                            }
                            match texts(c) {
                                Some(t) => *t = out,
                                None if !out.is_empty() => {
                                    c["delta"]["content"] = Value::String(out);
                                }
                                None => {}
                            }
                        }
                    }
                    if !send(&tx, &v.to_string()).await {
                        break 'read;
                    }
                }
            }
        }
        if !saw_done {
            stats.broken = true;
        }
        stats.total_ms = started.elapsed().as_secs_f64() * 1000.0;
        done(stats);
    });
    ReceiverStream::new(rx)
}

/// (length of the event, bytes to drain) of the first complete SSE event.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

async fn send(tx: &mpsc::Sender<Result<Bytes, std::io::Error>>, data: &str) -> bool {
    tx.send(Ok(Bytes::from(format!("data: {data}\n\n"))))
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_answers_get_their_values_back() {
        let vault = Vault::from_entries([("<CREDIT_CARD_1>".to_string(), "4111".to_string())]);
        let mut v = serde_json::json!({"choices": [
            {"message": {"role": "assistant", "content": "card <CREDIT_CARD_1>."}},
            {"text": "<CREDIT_CARD_1><OTHER_1>"}
        ]});
        restore_answer(&mut v, &vault);
        assert_eq!(v["choices"][0]["message"]["content"], "card 4111.");
        let quote = Vault::from_entries([("<PERSON_1>".to_string(), "Jo \"JJ\" Doe".to_string())]);
        let mut calls = serde_json::json!({"choices": [{"message": {"content": null, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"to\": \"<PERSON_1>\", \"n\": [\"<PERSON_1>\"]}"}}
        ]}}]});
        restore_answer(&mut calls, &quote);
        let args: Value = serde_json::from_str(
            calls
                .pointer("/choices/0/message/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
                .expect("args"),
        )
        .expect("still JSON");
        assert_eq!(args["to"], "Jo \"JJ\" Doe");
        assert_eq!(args["n"][0], "Jo \"JJ\" Doe");
        let mut held = std::collections::BTreeMap::new();
        for piece in ["{\"to\": \"<PER", "SON_1>\"}"] {
            let mut c = serde_json::json!({"delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}});
            hold_arguments(&mut c, &mut held);
            assert_eq!(
                c.pointer("/delta/tool_calls/0/function/arguments"),
                Some(&Value::from(""))
            );
        }
        assert_eq!(
            restore_arguments(&held[&0], &quote),
            r#"{"to":"Jo \"JJ\" Doe"}"#
        );
        assert_eq!(v["choices"][1]["text"], "4111<OTHER_1>");
        assert_eq!(event_end(b"data: x\r\n\r\ndata: y\n\n"), Some((7, 11)));
        assert_eq!(event_end(b"data: x\n"), None);
    }
}
