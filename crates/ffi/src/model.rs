//! Models and generation over the C ABI: open a GGUF file, generate from a
//! prompt or chat from messages with a callback per piece of text, cancel
//! from any thread.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use outpost_engine::{CancelToken, Prompt};

use crate::{guarded, text, OUTPOST_CANCELLED, OUTPOST_ERROR, OUTPOST_OK};

/// A loaded model. Thread-safe: several threads may generate with one
/// model at once (each generation has its own llama.cpp context).
pub struct OutpostModel(pub(crate) Arc<crate::api::LocalModel>);

/// A cancel flag for one or more generations. Thread-safe: typically
/// triggered from another thread than the one generating.
pub struct OutpostCancel(Arc<CancelToken>);

/// How to generate. Zero in a field means its default.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct OutpostGenerateOptions {
    /// Most tokens to generate (default 256).
    pub max_tokens: u32,
    /// Sampling temperature; 0 with `greedy` set is greedy decoding.
    pub temperature: f32,
    /// Non-zero: always the most likely token (temperature ignored).
    pub greedy: u8,
    /// CPU threads (default: the engine's choice for this machine).
    pub threads: u32,
    /// Context size (default: the model's, capped at 4096).
    pub n_ctx: u32,
    /// Sampling seed (0: a random one).
    pub seed: u32,
}

impl OutpostGenerateOptions {
    fn settings(&self) -> crate::generation::Settings {
        crate::generation::Settings {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            greedy: self.greedy != 0,
            threads: self.threads,
            n_ctx: self.n_ctx,
            seed: self.seed,
        }
    }
}

/// Called with each piece of text as it becomes final (UTF-8, not
/// NUL-terminated: `len` bytes). Return 0 to go on, anything else to stop
/// (the generation then ends as cancelled).
pub type OutpostPieceFn =
    Option<unsafe extern "C" fn(user: *mut c_void, text: *const c_char, len: usize) -> i32>;

/// Opens the GGUF model at `path`; NULL on failure (see
/// `outpost_last_error`). Thread-safe.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn outpost_model_open(path: *const c_char) -> *mut OutpostModel {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: as the caller promises.
        let path = unsafe { text(path, "path") }?;
        let m = crate::api::LocalModel::open(path.to_string()).map_err(|e| e.to_string())?;
        Ok(Box::into_raw(Box::new(OutpostModel(m))))
    })
}

/// Frees a model. NULL is ignored. Not thread-safe with calls still using
/// the model.
///
/// # Safety
/// `model` comes from `outpost_model_open` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn outpost_model_free(model: *mut OutpostModel) {
    if !model.is_null() {
        // SAFETY: made by Box::into_raw in outpost_model_open.
        drop(unsafe { Box::from_raw(model) });
    }
}

/// A new cancel flag (not set). Thread-safe.
#[no_mangle]
pub extern "C" fn outpost_cancel_new() -> *mut OutpostCancel {
    Box::into_raw(Box::new(OutpostCancel(Arc::new(CancelToken::new()))))
}

/// Sets the flag: generations given it stop at their next token and
/// return `OUTPOST_CANCELLED`. Thread-safe.
///
/// # Safety
/// `cancel` comes from `outpost_cancel_new` and is not freed yet.
#[no_mangle]
pub unsafe extern "C" fn outpost_cancel_trigger(cancel: *const OutpostCancel) {
    // SAFETY: a live handle, as the caller promises.
    if let Some(c) = unsafe { cancel.as_ref() } {
        c.0.cancel();
    }
}

/// Frees a cancel flag. NULL is ignored. Not thread-safe with calls still
/// using it.
///
/// # Safety
/// `cancel` comes from `outpost_cancel_new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn outpost_cancel_free(cancel: *mut OutpostCancel) {
    if !cancel.is_null() {
        // SAFETY: made by Box::into_raw in outpost_cancel_new.
        drop(unsafe { Box::from_raw(cancel) });
    }
}

/// Completes `prompt` (plain text), calling `on_piece` with each piece.
/// Returns `OUTPOST_OK`, `OUTPOST_CANCELLED` or `OUTPOST_ERROR`.
/// Thread-safe (see `OutpostModel`); `on_piece` runs on the calling thread.
///
/// # Safety
/// `model` is a live model; `prompt` a NUL-terminated string; `options`
/// and `cancel` NULL or live; `on_piece` NULL or a function that may be
/// called with `user`.
#[no_mangle]
pub unsafe extern "C" fn outpost_generate(
    model: *const OutpostModel,
    prompt: *const c_char,
    options: *const OutpostGenerateOptions,
    cancel: *const OutpostCancel,
    on_piece: OutpostPieceFn,
    user: *mut c_void,
) -> i32 {
    guarded(OUTPOST_ERROR, || {
        // SAFETY: as the caller promises.
        let prompt = unsafe { text(prompt, "prompt") }?.to_string();
        // SAFETY: as the caller promises.
        unsafe { run(model, Prompt::Text(prompt), options, cancel, on_piece, user) }
    })
}

/// Chats: `messages_json` is a JSON array of `{"role": "system"|"user"|
/// "assistant", "content": "..."}`, rendered with the model's own chat
/// template; the answer arrives through `on_piece`. Returns as
/// `outpost_generate`. Thread-safe.
///
/// # Safety
/// As `outpost_generate`, with `messages_json` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn outpost_chat(
    model: *const OutpostModel,
    messages_json: *const c_char,
    options: *const OutpostGenerateOptions,
    cancel: *const OutpostCancel,
    on_piece: OutpostPieceFn,
    user: *mut c_void,
) -> i32 {
    guarded(OUTPOST_ERROR, || {
        // SAFETY: as the caller promises.
        let json = unsafe { text(messages_json, "messages_json") }?;
        let msgs: Vec<crate::api::ChatMessage> = serde_json::from_str(json).map_err(|e| {
            format!("messages_json is not a JSON array of {{\"role\", \"content\"}} objects: {e}")
        })?;
        let prompt =
            crate::generation::chat_prompt(msgs.into_iter().map(|m| (m.role, m.content)).collect())
                .map_err(|e| format!("messages_json {e}"))?;
        // SAFETY: as the caller promises.
        unsafe { run(model, prompt, options, cancel, on_piece, user) }
    })
}

/// Embeds `n` NUL-terminated texts with an embedding model, writing
/// `n * dims` floats to `out` (row after row, in order) when `out_len`
/// is at least that; returns the model's `dims`, or `OUTPOST_ERROR` (too
/// small a buffer is an error naming the size needed; call with `out`
/// NULL and `out_len` 0 to learn `dims` first). Thread-safe.
///
/// # Safety
/// `model` is live; `texts` points to `n` NUL-terminated strings; `out`
/// is NULL or has room for `out_len` floats.
#[no_mangle]
pub unsafe extern "C" fn outpost_embed(
    model: *const OutpostModel,
    texts: *const *const c_char,
    n: usize,
    out: *mut f32,
    out_len: usize,
) -> i64 {
    guarded(i64::from(OUTPOST_ERROR), || {
        // SAFETY: as the caller promises.
        let m =
            unsafe { model.as_ref() }.ok_or("model is NULL: open one with outpost_model_open")?;
        if texts.is_null() || n == 0 {
            return Err("texts is NULL or n is 0: give at least one text".into());
        }
        let mut owned = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: `texts` holds `n` pointers, as the caller promises.
            let t = unsafe { text(*texts.add(i), &format!("texts[{i}]")) }?;
            owned.push(t.to_string());
        }
        let vectors = m.0.embed_texts(&owned)?;
        let dims = vectors.first().map_or(0, Vec::len);
        if out.is_null() && out_len == 0 {
            return Ok(dims as i64);
        }
        if out.is_null() || out_len < n * dims {
            return Err(format!(
                "out has room for {out_len} floats; {n} texts x {dims} dimensions need {}",
                n * dims
            ));
        }
        for (i, v) in vectors.iter().enumerate() {
            // SAFETY: room for n * dims floats was checked above.
            unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), out.add(i * dims), dims) };
        }
        Ok(dims as i64)
    })
}

/// The generation both C entry points share.
///
/// # Safety
/// As `outpost_generate`.
unsafe fn run(
    model: *const OutpostModel,
    prompt: Prompt,
    options: *const OutpostGenerateOptions,
    cancel: *const OutpostCancel,
    on_piece: OutpostPieceFn,
    user: *mut c_void,
) -> Result<i32, String> {
    // SAFETY: NULL or live handles, as the caller promises.
    let model =
        unsafe { model.as_ref() }.ok_or("model is NULL: open one with outpost_model_open")?;
    // SAFETY: as above.
    let o = unsafe { options.as_ref() }.copied().unwrap_or_default();
    // SAFETY: as above.
    let outside = unsafe { cancel.as_ref() }.map(|c| c.0.clone());
    let (_, cancelled) = crate::generation::generate(
        model.0.engine(),
        prompt,
        &o.settings(),
        outside.as_deref(),
        |piece| match on_piece {
            // SAFETY: the caller's callback, with the caller's pointer.
            Some(f) => (unsafe { f(user, piece.as_ptr().cast(), piece.len()) }) == 0,
            None => true,
        },
    )?;
    Ok(if cancelled {
        OUTPOST_CANCELLED
    } else {
        OUTPOST_OK
    })
}
