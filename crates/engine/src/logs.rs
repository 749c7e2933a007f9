//! llama.cpp's log, captured instead of printed.
//!
//! llama.cpp writes its progress and its error reasons to stderr by default,
//! which would garble `outpost run`'s streamed output. We keep the recent
//! warning and error lines in memory so that a failed load can say *why*, and
//! hand every line to `tracing` at debug level under the target `llama_cpp`
//! (`--log-level llama_cpp=debug` or `RUST_LOG=llama_cpp=debug` shows them).

use std::collections::VecDeque;
use std::ffi::{c_char, c_void, CStr};
use std::sync::{Mutex, Once};

static INSTALL: Once = Once::new();
static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
/// llama.cpp sends a line in pieces at times; the piece so far.
static PARTIAL: Mutex<String> = Mutex::new(String::new());
const KEEP: usize = 32;
/// The quantizer's `[ i/ n]` tensor counter, for progress bars.
static TENSOR_DONE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static TENSOR_TOTAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// (tensors done, tensors total) of the quantization running now, from
/// llama.cpp's per-tensor log lines.
pub fn quantize_progress() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (TENSOR_DONE.load(Relaxed), TENSOR_TOTAL.load(Relaxed))
}

pub(crate) fn reset_quantize_progress() {
    use std::sync::atomic::Ordering::Relaxed;
    TENSOR_DONE.store(0, Relaxed);
    TENSOR_TOTAL.store(0, Relaxed);
}

/// `[  12/ 272] name ...` → (12, 272).
fn tensor_counter(line: &str) -> Option<(u64, u64)> {
    let inner = line.trim_start().strip_prefix('[')?.split(']').next()?;
    let (a, b) = inner.split_once('/')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Installs the capturing log callback (idempotent).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: `callback` has the signature llama.cpp expects and lives for
        // the whole program; user_data is unused.
        unsafe { llama_cpp_sys_2::llama_log_set(Some(callback), std::ptr::null_mut()) };
    });
}

/// Empties the captured lines (call before an operation whose failure you
/// want to explain).
pub(crate) fn clear() {
    if let Ok(mut r) = RECENT.lock() {
        r.clear();
    }
}

/// The captured warning/error lines since the last [`clear`], joined.
pub(crate) fn recent_problems() -> String {
    RECENT
        .lock()
        .map(|r| {
            r.iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

unsafe extern "C" fn callback(
    level: llama_cpp_sys_2::ggml_log_level,
    text: *const c_char,
    _user: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for this call.
    let line = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    forward(&line);
    if let Some((done, total)) = tensor_counter(&line) {
        use std::sync::atomic::Ordering::Relaxed;
        TENSOR_DONE.store(done, Relaxed);
        TENSOR_TOTAL.store(total, Relaxed);
    }
    if level == llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR
        || level == llama_cpp_sys_2::GGML_LOG_LEVEL_WARN
    {
        if let Ok(mut r) = RECENT.lock() {
            if r.len() == KEEP {
                r.pop_front();
            }
            r.push_back(line.into_owned());
        }
    }
}

/// Passes whole lines to tracing (cheap when debug is off: one interest check).
fn forward(piece: &str) {
    if !tracing::enabled!(target: "llama_cpp", tracing::Level::DEBUG) {
        return;
    }
    let Ok(mut partial) = PARTIAL.lock() else {
        return;
    };
    partial.push_str(piece);
    while let Some(end) = partial.find('\n') {
        let line: String = partial.drain(..=end).collect();
        let line = line.trim_end();
        if !line.is_empty() {
            tracing::debug!(target: "llama_cpp", "{line}");
        }
    }
}
