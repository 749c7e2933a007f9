//! Outpost inside an app (#24): a small, versioned C ABI over the engine
//! and the guard, for apps that cannot run `outpost serve` beside
//! themselves. The header `include/outpost.h` is generated from this crate
//! by cbindgen (`crates/ffi/cbindgen.toml`) and committed; a test
//! regenerates it and fails when it differs.
//!
//! Rules every function keeps:
//! - Handles are opaque pointers made by an `outpost_*_new`/`_open` and
//!   released by the matching `_free` (NULL is accepted and ignored).
//! - No panic crosses the boundary: a panic becomes an error.
//! - On failure a function returns NULL or a negative code and
//!   [`outpost_last_error`] says what was wrong, for the calling thread.
//! - Strings in are NUL-terminated UTF-8; strings out are freed with
//!   [`outpost_string_free`].
//! - Each function says whether it is thread-safe. No state is shared
//!   between handles except the llama.cpp backend, which is process-wide
//!   and initialised once.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

mod agent;
pub mod api;
mod canary;
mod embedding;
mod generation;
mod guard;
mod model;
mod route;

uniffi::setup_scaffolding!("outpost");

pub use agent::*;
pub use guard::*;
pub use model::*;
pub use route::*;

/// The ABI version this library implements. It changes when a function's
/// signature or meaning changes; additions keep it.
pub const OUTPOST_ABI_VERSION: u32 = 1;

/// Returned by functions that run to an end: it ended normally.
pub const OUTPOST_OK: i32 = 0;
/// The work was cancelled (a cancel handle, or the callback asked to stop).
pub const OUTPOST_CANCELLED: i32 = 1;
/// It failed: see [`outpost_last_error`].
pub const OUTPOST_ERROR: i32 = -1;

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// [`OUTPOST_ABI_VERSION`] of the loaded library: compare it with the
/// header's before calling anything else. Thread-safe.
#[no_mangle]
pub extern "C" fn outpost_abi_version() -> u32 {
    OUTPOST_ABI_VERSION
}

/// How this library was built, as JSON: `{"abi", "llama_cpp",
/// "cpu_features": ["NEON", "DOTPROD", ...] or ["AVX2", ...],
/// "system_info"}` (llama.cpp's own report of the CPU features ggml was
/// compiled with). Free it with [`outpost_string_free`]. Thread-safe.
#[no_mangle]
pub extern "C" fn outpost_build_info() -> *mut c_char {
    guarded(std::ptr::null_mut(), || {
        let b = outpost_engine::build_info();
        Ok(give(
            serde_json::json!({
                "abi": OUTPOST_ABI_VERSION,
                "llama_cpp": format!("{} (llama-cpp-sys-2 {})", b.llama_cpp_commit, b.llama_cpp_sys_version),
                "cpu_features": b.cpu_features,
                "system_info": b.system_info,
            })
            .to_string(),
        ))
    })
}

/// What the last failing call on this thread was told, or NULL. The text
/// stays valid until the next failing call on this thread; do not free it.
/// Thread-safe (each thread has its own).
#[no_mangle]
pub extern "C" fn outpost_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |s| s.as_ptr()))
}

/// Frees a string this library returned. NULL is ignored. Thread-safe.
///
/// # Safety
/// `s` must come from this library and not have been freed.
#[no_mangle]
pub unsafe extern "C" fn outpost_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the caller passes a pointer made by `CString::into_raw`.
        drop(unsafe { CString::from_raw(s) });
    }
}

fn set_error(message: String) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(text));
}

/// Runs `f`, turning an error or a panic into `failed` and the thread's
/// last error.
pub(crate) fn guarded<T>(failed: T, f: impl FnOnce() -> Result<T, String>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(message)) => {
            set_error(message);
            failed
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_error(format!(
                "internal error (a panic, caught at the C boundary): {what}"
            ));
            failed
        }
    }
}

/// The UTF-8 text behind `s`, named `what` in the error.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that outlives the call.
pub(crate) unsafe fn text<'a>(s: *const c_char, what: &str) -> Result<&'a str, String> {
    if s.is_null() {
        return Err(format!(
            "{what} is NULL: pass a NUL-terminated UTF-8 string"
        ));
    }
    // SAFETY: non-null and NUL-terminated, as the caller promises.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|e| format!("{what} is not UTF-8 ({e})"))
}

/// A string handed to the caller (freed with [`outpost_string_free`]).
pub(crate) fn give(s: String) -> *mut c_char {
    CString::new(s.replace('\0', " "))
        .unwrap_or_default()
        .into_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        let p = outpost_last_error();
        assert!(!p.is_null(), "an error was set");
        // SAFETY: a NUL-terminated string owned by this thread's slot.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    #[test]
    fn errors_and_panics_stop_at_the_boundary_with_their_text() {
        assert_eq!(guarded(7, || Ok(3)), 3);
        assert_eq!(guarded(-1, || Err("the path is wrong".into())), -1);
        assert_eq!(last(), "the path is wrong");
        let r: i32 = guarded(-1, || panic!("boom"));
        assert_eq!(r, -1);
        assert!(last().contains("boom"), "{}", last());
        // Per thread: another thread sees its own (none).
        std::thread::spawn(|| assert!(outpost_last_error().is_null()))
            .join()
            .expect("thread");
        // A NULL or non-UTF-8 string is refused by name.
        // SAFETY: NULL is allowed; the other is NUL-terminated.
        assert!(unsafe { text(std::ptr::null(), "prompt") }
            .unwrap_err()
            .contains("prompt is NULL"));
        let bad = b"\xff\0";
        assert!(unsafe { text(bad.as_ptr().cast(), "prompt") }
            .unwrap_err()
            .contains("not UTF-8"));
    }

    #[test]
    fn handles_refuse_null_and_bad_input_without_crashing() {
        // SAFETY: NULL handles and valid strings, as the functions allow.
        unsafe {
            assert!(outpost_model_open(std::ptr::null()).is_null());
            assert!(last().contains("path is NULL"));
            let g = outpost_guard_new(c"XX".as_ptr());
            assert!(g.is_null());
            assert!(last().contains("XX"), "{}", last());
            let msg = c"[]";
            assert_eq!(
                outpost_chat(
                    std::ptr::null(),
                    msg.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    None,
                    std::ptr::null_mut()
                ),
                OUTPOST_ERROR
            );
            assert!(
                last().contains("empty") || last().contains("model is NULL"),
                "{}",
                last()
            );
            outpost_model_free(std::ptr::null_mut());
            outpost_guard_free(std::ptr::null_mut());
            outpost_string_free(std::ptr::null_mut());
        }
    }
}
